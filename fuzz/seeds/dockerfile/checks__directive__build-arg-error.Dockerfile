FROM scratch AS Final
CMD ["serve"]
