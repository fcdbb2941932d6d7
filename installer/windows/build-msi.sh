#!/bin/sh
# Builds accord.msi on Linux with Debian's wixl (package wixl; msibuild from
# msitools). The release build for the fleet is made on Windows with WiX 3
# (.github/workflows/windows.yml); this one is for checking the tables here.
# usage: installer/windows/build-msi.sh ACCORD_EXE OUT.msi [VERSION]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exe=$1; out=$2
version=${3:-$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$here/../../Cargo.toml" | head -n1)}
# wixl wants x.y.z; drop any pre-release/build suffix (MSI versions are numeric)
version=$(echo "$version" | sed 's/[-+].*//')
# wixl resolves Source= against the current directory and mishandles absolute
# paths: build in a scratch directory with plain file names.
out=$(readlink -m "$out")
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cp "$exe" "$tmp/accord.exe"; cp "$here/policy.toml" "$here/accord.wxs" "$tmp/"
(cd "$tmp" && wixl -a x64 -D Version="$version" -D AccordExe=accord.exe \
     -D PolicySource=policy.toml -D LockAcl=no -o "$out" accord.wxs) 2> "$out.log" \
     || { cat "$out.log" >&2; exit 1; }
# wixl 0.101 warns about (and ignores) what it does not know; anything else is an error.
if grep -v -e '^$' -e "has no property named 'Platform'" -e "has no property named 'NeverOverwrite'" \
        -e "has no property named 'Permanent'" "$out.log" | grep -q .; then
    cat "$out.log" >&2; exit 1
fi
# ... and it ignores NeverOverwrite / Permanent on Component: set the bits WiX 3
# sets (msidbComponentAttributes64bit 0x100 | Permanent 0x10 | NeverOverwrite 0x80).
policy_component=$(tr '\n' ' ' < "$here/accord.wxs" | grep -o '<Component Id="AccordPolicy"[^>]*>')
for a in 'NeverOverwrite="yes"' 'Permanent="yes"'; do
    echo "$policy_component" | grep -q "$a" || { echo "accord.wxs: AccordPolicy lost $a" >&2; exit 1; }
done
msibuild "$out" -q "UPDATE \`Component\` SET \`Attributes\` = 400 WHERE \`Component\` = 'AccordPolicy'"
rm -f "$out.log"
echo "built $out (version $version)"
