#!/bin/sh
# The static audit's core checks written as a shell script (the baseline perfgroup is compared
# with): group, copy owner/group/mode/links, capabilities, parent directories, paranoid live and
# persisted, profile.d snippet, kptr_restrict. Prints one line per check.
group=${1:-perf_users}
dest=${2:-/usr/local/libexec/perfgroup/$group/perf}
status=0
gid=$(getent group "$group" | cut -d: -f3) || { echo "CRITICAL group missing"; exit 2; }
echo "OK group $group gid $gid"
set -- $(stat -c '%u %g %a %h' "$dest" 2>/dev/null) || { echo "CRITICAL copy missing"; exit 2; }
[ "$1" = 0 ] && [ "$2" = "$gid" ] && [ "$3" = 750 ] && [ "$4" = 1 ] && echo "OK copy" || { echo "CRITICAL copy $*"; status=2; }
[ "$(head -c 4 "$dest" | od -An -c | tr -d ' ')" = '177ELF' ] || { echo "CRITICAL not ELF"; status=2; }
caps=$(getcap "$dest" | awk '{print $2}')
[ "$caps" = "cap_perfmon=ep" ] && echo "OK caps" || { echo "CRITICAL caps $caps"; status=2; }
d=$(dirname "$dest")
while :; do
    set -- $(stat -c '%u %a' "$d")
    [ "$1" = 0 ] && [ $(( 0$2 & 022 )) = 0 ] || { echo "CRITICAL unsafe $d"; status=2; }
    [ "$d" = / ] && break
    d=$(dirname "$d")
done
paranoid=$(cat /proc/sys/kernel/perf_event_paranoid)
[ "$paranoid" -ge 2 ] && echo "OK paranoid $paranoid" || { echo "CRITICAL paranoid $paranoid"; status=2; }
grep -qs 'kernel.perf_event_paranoid *= *[2-9]' /etc/sysctl.d/*.conf && echo "OK persisted" || { echo "WARNING not persisted"; [ $status -lt 1 ] && status=1; }
[ -f "/etc/profile.d/perfgroup-$group.sh" ] && echo "OK profile" || { echo "WARNING profile"; [ $status -lt 1 ] && status=1; }
echo "kptr_restrict $(cat /proc/sys/kernel/kptr_restrict)"
exit $status
