#!/bin/sh
# Chassis power for ipmi_sim: ipmi_sim runs "chassis_control.sh <mc> get power"
# and "... set power 0|1" (and "set reset 1"); the state lives in a file
# next to this script's state directory, given as the first argument.
state="$1/power"
shift 2 # state dir, MC address
op=$1
shift
case $op in
get)
  for p in "$@"; do
    case $p in
      power) [ -f "$state" ] || echo 1 > "$state"; echo "power:$(cat "$state")" ;;
      boot) echo "boot:default" ;;
    esac
  done ;;
set)
  while [ $# -gt 1 ]; do
    case $1 in
      power) echo "$2" > "$state" ;;
    esac
    shift 2
  done ;;
esac
