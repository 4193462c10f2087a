#!/bin/sh
# Chassis power for ipmi_sim, which runs "<this> <dir> <mc> get power" and
# "<this> <dir> <mc> set power 0|1" (and "set reset 1"). The power state
# lives in <dir>/power and the number of power-ons (boots) in <dir>/boots.
dir=$1
shift 2 # dir, MC address
op=$1
shift
power() { cat "$dir/power" 2>/dev/null || echo 1; }
case $op in
get)
  for p in "$@"; do
    case $p in
      power) echo "power:$(power)" ;;
      boot) echo "boot:default" ;;
    esac
  done ;;
set)
  while [ $# -gt 1 ]; do
    if [ "$1" = power ]; then
      if [ "$2" = 1 ] && [ "$(power)" = 0 ]; then
        echo $(( $(cat "$dir/boots" 2>/dev/null || echo 0) + 1 )) > "$dir/boots"
      fi
      echo "$2" > "$dir/power"
    fi
    shift 2
  done ;;
esac
