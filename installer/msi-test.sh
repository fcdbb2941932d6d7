#!/bin/bash
# Builds accord.msi from installer/windows/accord.wxs with Debian's wixl and a
# STAND-IN accord.exe (this test only: the MSI built here is never shipped),
# then checks its tables with msiinfo. Fails on any mismatch.
# The expected values are written out here on purpose: changing the
# UpgradeCode or a component GUID breaks upgrades of installed fleets.
# needs: wixl, msitools (msiinfo, msibuild, msiextract)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=$(readlink -m "${MSI_TEST_WORK:-target/msi-test}")

UPGRADE_CODE='{A3D57956-0A87-4525-BB73-F9117064D100}'
declare -A GUID=(
    [AccordExe]='{9AD84ED6-0160-4D9E-8F9B-A0BCA98DCE6D}'
    [AccordRun]='{47BC1E96-EBD6-4726-95E3-39D86AF709BC}'
    [AccordPolicy]='{5E4B9E92-0670-45FE-B77B-9F2B1035CFC4}'
)
RUN_KEY='Software\Microsoft\Windows\CurrentVersion\Run'
RUN_VALUE='"[INSTALLDIR]accord.exe" agent'

fails=0
fail() { echo "msi-test: FAIL: $*" >&2; fails=$((fails + 1)); }
ok() { echo "msi-test: ok: $*"; }
for t in wixl msiinfo msibuild msiextract; do
    command -v "$t" >/dev/null || { echo "msi-test: $t not found (apt-get install wixl msitools)" >&2; exit 1; }
done

rm -rf "$WORK"; mkdir -p "$WORK"
# The Windows policy must be the Linux one with Windows paths.
"$HERE/windows/make-policy.sh" "$WORK/policy.expected.toml"
cmp -s "$WORK/policy.expected.toml" "$HERE/windows/policy.toml" \
    || fail "installer/windows/policy.toml is out of date: run installer/windows/make-policy.sh"

VERSION=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$ROOT/Cargo.toml" | head -n1 | sed 's/[-+].*//')
printf 'MZ stand-in for accord.exe: msi-test only, never shipped\n' > "$WORK/accord.exe"
"$HERE/windows/build-msi.sh" "$WORK/accord.exe" "$WORK/accord.msi" "$VERSION" >/dev/null
"$HERE/windows/build-msi.sh" "$WORK/accord.exe" "$WORK/accord-next.msi" "9.9.9" >/dev/null
MSI=$WORK/accord.msi

# row TABLE KEY: the exported row whose first column is KEY (tab-separated)
export_table() { msiinfo export "$1" "$2" | tr -d '\r' | tail -n +4; }  # rows only, CRLF -> LF
row() { export_table "$MSI" "$1" | awk -F'\t' -v k="$2" '$1 == k'; }
expect_row() { # TABLE KEY EXPECTED_ROW(tab-separated)
    local got; got=$(row "$1" "$2")
    [ "$got" = "$3" ] || fail "$1 row $2: got [$got] want [$3]"
}
T=$'\t'

# Registry: HKLM (Root 2) ...\Run  Accord = "[INSTALLDIR]accord.exe" agent
expect_row Registry AccordRunValue "AccordRunValue${T}2${T}${RUN_KEY}${T}Accord${T}${RUN_VALUE}${T}AccordRun"
[ "$(export_table "$MSI" Registry | wc -l)" = 1 ] || fail "Registry: unexpected extra rows"
ok "Registry: HKLM\\$RUN_KEY Accord = $RUN_VALUE"

# File: accord.exe and policy.toml, each the key file of its component
[ -n "$(row File AccordExeFile | awk -F'\t' '$2=="AccordExe" && $3=="accord.exe"')" ] || fail "File: accord.exe not in AccordExe"
[ -n "$(row File AccordPolicyFile | awk -F'\t' '$2=="AccordPolicy" && $3=="policy.toml"')" ] || fail "File: policy.toml not in AccordPolicy"
[ "$(export_table "$MSI" File | wc -l)" = 2 ] || fail "File: expected exactly accord.exe and policy.toml"
ok "File: accord.exe (AccordExe), policy.toml (AccordPolicy)"

# Component: fixed GUIDs, directories, key paths, attributes
# (0x100 64-bit, 0x4 registry key path, 0x10 permanent, 0x80 never overwrite)
expect_row Component AccordExe    "AccordExe${T}${GUID[AccordExe]}${T}INSTALLDIR${T}256${T}${T}AccordExeFile"
expect_row Component AccordRun    "AccordRun${T}${GUID[AccordRun]}${T}INSTALLDIR${T}260${T}${T}AccordRunValue"
expect_row Component AccordPolicy "AccordPolicy${T}${GUID[AccordPolicy]}${T}POLICYDIR${T}400${T}${T}AccordPolicyFile"
ok "Component: AccordExe ${GUID[AccordExe]}, AccordRun ${GUID[AccordRun]}, AccordPolicy ${GUID[AccordPolicy]} (Permanent|NeverOverwrite|64-bit = 400)"

# Directory: Program Files (64-bit)\Accord and ProgramData\Accord
expect_row Directory INSTALLDIR "INSTALLDIR${T}ProgramFiles64Folder${T}Accord"
expect_row Directory POLICYDIR  "POLICYDIR${T}CommonAppDataFolder${T}Accord"
ok "Directory: [ProgramFiles64Folder]Accord, [CommonAppDataFolder]Accord"

# Property: UpgradeCode, per-machine, version; a ProductCode is present
expect_row Property UpgradeCode "UpgradeCode${T}${UPGRADE_CODE}"
expect_row Property ALLUSERS "ALLUSERS${T}1"
expect_row Property ProductVersion "ProductVersion${T}${VERSION}"
PC1=$(row Property ProductCode | cut -f2)
[[ $PC1 =~ ^\{[0-9A-F]{8}(-[0-9A-F]{4}){3}-[0-9A-F]{12}\}$ ]] || fail "Property: ProductCode [$PC1]"
ok "Property: UpgradeCode $UPGRADE_CODE, ALLUSERS=1, ProductVersion $VERSION, ProductCode $PC1"

# Upgrade (MajorUpgrade): older versions detected and removed, newer refused
export_table "$MSI" Upgrade | awk -F'\t' -v c="$UPGRADE_CODE" '$1 == c && $7 == "WIX_UPGRADE_DETECTED"' | grep -q . \
    || fail "Upgrade: no WIX_UPGRADE_DETECTED row for $UPGRADE_CODE"
export_table "$MSI" Upgrade | awk -F'\t' -v c="$UPGRADE_CODE" '$1 == c && $7 == "WIX_DOWNGRADE_DETECTED"' | grep -q . \
    || fail "Upgrade: no WIX_DOWNGRADE_DETECTED row for $UPGRADE_CODE"
row InstallExecuteSequence RemoveExistingProducts | grep -q . || fail "InstallExecuteSequence: no RemoveExistingProducts"
row LaunchCondition 'NOT WIX_DOWNGRADE_DETECTED' | grep -q . || fail "LaunchCondition: downgrade not refused"
ok "Upgrade: $UPGRADE_CODE with WIX_UPGRADE_DETECTED / WIX_DOWNGRADE_DETECTED, RemoveExistingProducts scheduled"

# A newer build: same UpgradeCode and component GUIDs, new ProductCode
PC2=$(export_table "$WORK/accord-next.msi" Property | awk -F'\t' '$1=="ProductCode"{print $2}')
UC2=$(export_table "$WORK/accord-next.msi" Property | awk -F'\t' '$1=="UpgradeCode"{print $2}')
[ "$UC2" = "$UPGRADE_CODE" ] && [ -n "$PC2" ] && [ "$PC2" != "$PC1" ] \
    || fail "next build: UpgradeCode [$UC2] ProductCode [$PC2] (first $PC1)"
diff <(export_table "$MSI" Component) <(export_table "$WORK/accord-next.msi" Component) >/dev/null \
    || fail "next build: Component table differs"
ok "next build 9.9.9: same UpgradeCode and component GUIDs, new ProductCode $PC2"

# Silent install: no UI sequence content beyond the defaults, no Dialog table,
# per-machine x64 package
msiinfo tables "$MSI" | grep -qx Dialog && fail "MSI has a Dialog table (UI): /qn install must need none"
[ "$(msiinfo export "$MSI" _SummaryInformation | tr -d '\r' | awk -F'\t' '$1=="7"{print $2}')" = "x64;1033" ] \
    || fail "_SummaryInformation: template is not x64;1033"
ok "no Dialog table (msiexec /i accord.msi /qn), template x64;1033"

# What is inside: the policy shipped is installer/windows/policy.toml
mkdir -p "$WORK/extract"
(cd "$WORK/extract" && msiextract ../accord.msi >/dev/null)
got=$(find "$WORK/extract" -name policy.toml | head -n1)
[ -n "$got" ] && cmp -s "$got" "$HERE/windows/policy.toml" || fail "extracted policy.toml differs from installer/windows/policy.toml"
ok "extracted policy.toml = installer/windows/policy.toml"

echo "msi-test: tables checked: Registry File Component Directory Property Upgrade InstallExecuteSequence LaunchCondition _SummaryInformation"
if [ "$fails" -gt 0 ]; then echo "msi-test: $fails FAILED"; exit 1; fi
echo "msi-test: PASS"
