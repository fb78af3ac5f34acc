#!/bin/sh
# Devcontainer entrypoint: run the container's command under airlock.
#
# Full mode (namespaces + masked view + Landlock + seccomp) where the container
# allows user namespaces; landlock-only mode otherwise. The first line airlock
# prints says which, and so does the audit record.
#
# Container options for full mode (docker run / devcontainer.json runArgs):
#   --security-opt seccomp=unconfined     the default Docker seccomp profile refuses
#                                         unshare/clone with CLONE_NEWUSER
#   --security-opt apparmor=unconfined    on hosts where AppArmor restricts user namespaces
#   (on the host) sysctl kernel.apparmor_restrict_unprivileged_userns=0 (Ubuntu 24.04+)
# No --privileged and no added capabilities are needed: airlock uses user namespaces.
#
# Environment:
#   AIRLOCK_PROFILE     profile to use (default: devcontainer)
#   AIRLOCK_WORKSPACE   workspace directory (default: the current directory)
#   AIRLOCK_AUDIT_LOG   where to append audit records (optional)
#   AIRLOCK_WATCH=1     start `airlock watch` on the workspace first, so later
#                       `airlock run`s in the container skip the pre-flight's
#                       stat walk when nothing changed (a failure to start it
#                       only costs that speed, and is printed)
set -eu
profile=${AIRLOCK_PROFILE:-devcontainer}
workspace=${AIRLOCK_WORKSPACE:-$(pwd)}
if [ "$#" -eq 0 ]; then
  set -- "${SHELL:-/bin/sh}"
fi
if [ "${AIRLOCK_WATCH:-0}" = 1 ]; then
  # A watcher that cannot start costs speed, not safety: its error is printed
  # and the run goes on.
  set +e
  airlock watch start "$workspace"
  set -e
fi
exec airlock run --profile "$profile" --workspace "$workspace" -- "$@"
