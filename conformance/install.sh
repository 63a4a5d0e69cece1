#!/usr/bin/env bash
# Installs the Autobahn TestSuite (`wstest`) for `just conformance`, privately under
# target/autobahn/, and leaves one launcher at target/autobahn/bin/wstest that run.py calls.
#
# Two ways, the first that applies:
#   1. a Docker engine answers (`docker info`): pull crossbario/autobahn-testsuite; the launcher
#      runs wstest in it with host networking and the workspace mounted at the same path;
#   2. otherwise: autobahntestsuite is Python 2 code, so unpack Debian bullseye's python2.7
#      (fetched with `apt-get download` through a private apt configuration, never installed
#      system-wide) into target/autobahn/sysroot/ and pip-install the pinned packages of
#      conformance/requirements-py27.txt into that interpreter's own dist-packages.
# AUTOBAHN_VIA=docker or AUTOBAHN_VIA=local forces one. A second run does nothing once the
# launcher works (about a second). Cold, the local install takes about 35 s.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
here="$root/conformance"
dest="$root/target/autobahn"
launcher="$dest/bin/wstest"
image=crossbario/autobahn-testsuite

log() { printf 'conformance/install.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The launcher records how it runs wstest on its second line, so a change of way reinstalls.
launcher_works() {
    local via=$1
    [[ -x $launcher ]] && sed -n 2p "$launcher" | grep -qx "# via: $via" \
        && "$launcher" --autobahnversion >/dev/null 2>&1
}

via=${AUTOBAHN_VIA:-}
if [[ -z $via ]]; then
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        via=docker
    else
        via=local
    fi
fi
case $via in docker | local) ;; *) die "AUTOBAHN_VIA must be docker or local, not '$via'" ;; esac

if launcher_works "$via"; then
    log "wstest already installed ($via): $launcher"
    exit 0
fi
mkdir -p "$dest/bin"

# ---------------------------------------------------------------------------------------------
if [[ $via == docker ]]; then
    docker image inspect "$image" >/dev/null 2>&1 || docker pull "$image"
    cat >"$launcher.tmp" <<EOF
#!/usr/bin/env bash
# via: docker
# Runs wstest in the image $image. Host networking lets it reach servers on
# 127.0.0.1; the workspace is mounted at its own path so spec files and report directories
# keep their absolute paths.
set -euo pipefail
root=\$(cd "\$(dirname "\${BASH_SOURCE[0]}")/../../.." && pwd)
exec docker run --rm --network host --user "\$(id -u):\$(id -g)" \\
    --volume "\$root:\$root" --workdir "\$PWD" $image wstest "\$@"
EOF
    chmod +x "$launcher.tmp"
    mv "$launcher.tmp" "$launcher"
    launcher_works docker || die "$launcher does not run; see \`$launcher --autobahnversion\`"
    log "installed wstest (docker image $image): $launcher"
    exit 0
fi

# ---------------------------------------------------------------------------------------------
# Local: Python 2.7 from Debian bullseye, unpacked.
for tool in apt-get dpkg-deb gcc python3; do
    command -v "$tool" >/dev/null 2>&1 || die "needs $tool on PATH"
done
started=$(date +%s)
sysroot="$dest/sysroot"
apt="$dest/apt"
cache="$dest/cache"
triplet=$(gcc -dumpmachine)
packages=(python2.7 python2.7-minimal libpython2.7 libpython2.7-minimal libpython2.7-stdlib
    libpython2.7-dev python2.7-dev libssl1.1 libffi7)

# The Debian mirrors this machine already uses (deb822 .sources or one-line sources.list), so
# no host is written into the repository: prints "URI<TAB>Signed-By" of the first entry for
# this release (its codename among the suites, which leaves out third-party repositories) that
# is the main archive (kind=main) or the security archive (kind=security).
codename=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")
[[ -n $codename ]] || die "cannot tell the Debian release (no VERSION_CODENAME in /etc/os-release)"
mirror() {
    local kind=$1 file found
    for file in /etc/apt/sources.list.d/*.sources; do
        [[ -r $file ]] || continue
        found=$(awk -v kind="$kind" -v codename="$codename" 'BEGIN { RS = ""; FS = "\n" }
            {
                uris = ""; suites = ""; signed = ""
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^URIs:/) { uris = $i; sub(/^URIs:[ \t]*/, "", uris) }
                    if ($i ~ /^Suites:/) { suites = " " $i " "; sub(/^ Suites:/, "", suites) }
                    if ($i ~ /^Signed-By:/) { signed = $i; sub(/^Signed-By:[ \t]*/, "", signed) }
                }
                split(uris, u, /[ \t]+/)
                wanted = (kind == "security") ? codename "-security" : codename
                if (u[1] != "" && suites ~ ("[ \t]" wanted "[ \t]")) { print u[1] "\t" signed; exit }
            }' "$file")
        if [[ -n $found ]]; then printf '%s\n' "$found"; return; fi
    done
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -r $file ]] || continue
        found=$(awk -v kind="$kind" -v codename="$codename" '$1 == "deb" {
                i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                wanted = (kind == "security") ? codename "-security" : codename
                if ($(i + 1) == wanted) { print $i "\t"; exit }
            }' "$file")
        if [[ -n $found ]]; then printf '%s\n' "$found"; return; fi
    done
}
main_line=$(mirror main)
security_line=$(mirror security)
[[ -n $main_line ]] || die "no Debian mirror for $codename in /etc/apt/sources.list{,.d}"
main_uri=${main_line%%$'\t'*}
signed_by=${main_line#*$'\t'}
# Without a configured security mirror, use the main one's sibling (…/debian-security).
security_uri=${security_line%%$'\t'*}
[[ -n $security_uri ]] || security_uri="${main_uri%/}-security"

mkdir -p "$apt"/{etc/sources.list.d,etc/preferences.d,lists/partial,cache/archives/partial,debs}
for entry in "$main_uri bullseye" "$security_uri bullseye-security"; do
    read -r uri suite <<<"$entry"
    printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\n' "$uri" "$suite"
    if [[ -n $signed_by ]]; then printf 'Signed-By: %s\n' "$signed_by"; fi
    printf '\n'
done >"$apt/etc/sources.list.d/bullseye.sources"
# Private lists, cache, preferences and an empty dpkg status: apt knows only bullseye here and
# installs nothing; the system's keyring still verifies the signatures.
cat >"$apt/apt.conf" <<EOF
Dir::Etc::SourceList "/dev/null";
Dir::Etc::SourceParts "$apt/etc/sources.list.d";
Dir::Etc::Preferences "/dev/null";
Dir::Etc::PreferencesParts "$apt/etc/preferences.d";
Dir::State "$apt";
Dir::State::Lists "$apt/lists";
Dir::State::status "/dev/null";
Dir::Cache "$apt/cache";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT::Sandbox::User "$(id -un)";
EOF
export APT_CONFIG="$apt/apt.conf"
log "fetching python2.7 from Debian bullseye ($main_uri, $security_uri)"
apt-get -qq update
(cd "$apt/debs" && rm -f ./*.deb && apt-get -qq download "${packages[@]}")

rm -rf "$sysroot"
mkdir -p "$sysroot"
for deb in "$apt"/debs/*.deb; do
    dpkg-deb -x "$deb" "$sysroot"
done
unset APT_CONFIG

python="$sysroot/usr/bin/python2.7"
site="$sysroot/usr/lib/python2.7/dist-packages"
mkdir -p "$site"
# The unpacked interpreter: its own prefix (so dist-packages above is a site directory, where
# zope's namespace .pth files are read), its own libssl/libffi, no user site, no ~/.pydistutils.
py27() {
    env -u PYTHONPATH -u PIP_FIND_LINKS \
        PYTHONHOME="$sysroot/usr" PYTHONNOUSERSITE=1 \
        LD_LIBRARY_PATH="$sysroot/usr/lib/$triplet:$sysroot/lib/$triplet${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
        CC=gcc LDSHARED="gcc -pthread -shared" \
        CFLAGS="-I$sysroot/usr/include/python2.7 -I$sysroot/usr/include/$triplet/python2.7 -I$sysroot/usr/include" \
        "$python" "$@"
}
py27 -c 'import ssl, ctypes, zlib' || die "the unpacked python2.7 does not start"

# pip 20.3.4 is the last for Python 2.
wheels="$cache/wheels"
mkdir -p "$wheels"
pip_wheel="$wheels/pip-20.3.4-py2.py3-none-any.whl"
if [[ ! -f $pip_wheel ]]; then
    python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$wheels" pip==20.3.4
fi
# Bootstrap it into the site (pip cannot build source packages while it runs from a zip).
py27 "$pip_wheel/pip" install --quiet --disable-pip-version-check --no-python-version-warning \
    --no-input --target "$site" "$pip_wheel"
pip() {
    py27 -m pip --disable-pip-version-check --no-input --no-python-version-warning \
        --cache-dir "$cache/pip" "$@"
}
log "installing autobahntestsuite and its pinned dependencies"
# setuptools first and on its own: the others' setup.py scripts import it from the site.
pip install --quiet --target "$site" --upgrade setuptools==44.0.0
pip install --quiet --target "$site" --upgrade --requirement "$here/requirements-py27.txt"
pip install --quiet --target "$site" --upgrade --no-deps autobahntestsuite==25.10.1

cat >"$launcher.tmp" <<EOF
#!/usr/bin/env bash
# via: local
# Runs wstest on the python2.7 unpacked by conformance/install.sh (all paths relative to here).
set -euo pipefail
sysroot=\$(cd "\$(dirname "\${BASH_SOURCE[0]}")/../sysroot" && pwd)
export PYTHONHOME="\$sysroot/usr" PYTHONNOUSERSITE=1
export LD_LIBRARY_PATH="\$sysroot/usr/lib/$triplet:\$sysroot/lib/$triplet\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
unset PYTHONPATH
exec "\$sysroot/usr/bin/python2.7" -c \\
    'import sys; sys.argv[0] = "wstest"; from autobahntestsuite.wstest import run; sys.exit(run())' "\$@"
EOF
chmod +x "$launcher.tmp"
mv "$launcher.tmp" "$launcher"
launcher_works local || die "$launcher does not run; see \`$launcher --autobahnversion\`"
log "installed wstest in $(($(date +%s) - started)) s: $launcher"
