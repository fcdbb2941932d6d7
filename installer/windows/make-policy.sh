#!/bin/sh
# Writes the Windows policy shipped in the MSI (installer/windows/policy.toml)
# from the Linux one (assets/policy.toml): same keys, same comments, with the
# /etc/accord/ paths moved to C:\ProgramData\Accord\ (TOML literal strings),
# and launch = "none": Accord cannot start a VNC server on Windows (yet), the
# one installed there listens on `vnc` (docs/windows.md).
# installer/msi-test.sh fails when the committed file is out of date.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/policy.toml}
sed -E -e 's#^launch = "auto"$#launch = "none"  \# Windows: started by IT (docs/windows.md)#' \
  -e "s#\"/etc/accord/([^\"]*)\"#'C:\\\\ProgramData\\\\Accord\\\\\\1'#g" "$here/../../assets/policy.toml" > "$out"
