FROM scratch AS Final
RUNN make
