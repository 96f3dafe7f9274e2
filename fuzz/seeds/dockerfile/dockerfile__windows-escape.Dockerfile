# escape=`

FROM mcr.microsoft.com/windows/servercore:ltsc2022
SHELL ["powershell", "-Command", "$ErrorActionPreference = 'Stop';"]
WORKDIR C:\app
COPY app.ps1 C:\app\
RUN Write-Host 'installing'; `
    New-Item -ItemType Directory -Path C:\data | Out-Null
ENV DATA_DIR=C:\data `
    LOG_DIR=C:\logs
CMD ["powershell", "-File", "C:\\app\\app.ps1"]
