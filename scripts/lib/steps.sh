# Sourced by the setup scripts (setup-venv, quickstart, test, build-deb): each step says
# what it does and how long it took, and a failing one says which it was and shows the
# end of its log. Bash 5 (EPOCHREALTIME).

_steps_now_ms() {
    local t=${EPOCHREALTIME/[!0-9]/}  # the decimal separator follows the locale
    echo $((t / 1000))
}

# 0.4 s, 12 s, 1 min 05 s
duration() {
    local ms=$1
    if [ "$ms" -lt 10000 ]; then
        printf '%d.%d s' $((ms / 1000)) $((ms % 1000 / 100))
    elif [ "$ms" -lt 60000 ]; then
        printf '%d s' $((ms / 1000))
    else
        printf '%d min %02d s' $((ms / 60000)) $((ms % 60000 / 1000))
    fi
}

say() {
    echo "$*" >&2
}

# step LOG "what it does" COMMAND [ARG...]
# Runs COMMAND with its output appended to LOG ("-": shown as it comes). It runs in a
# subshell with `set -e` of its own, outside any `if`, so that a shell function stops at
# its first failing command (errexit is ignored in a condition, and in what it calls).
step() {
    local log=$1 what=$2
    shift 2
    local started rc
    started=$(_steps_now_ms)
    set +e
    if [ "$log" = "-" ]; then
        say "==> $what"
        (set -e; "$@")
    else
        printf '==> %s ... ' "$what" >&2
        (set -e; "$@") >>"$log" 2>&1 </dev/null
    fi
    rc=$?
    set -e
    local took
    took=$(duration $(($(_steps_now_ms) - started)))
    if [ "$rc" -ne 0 ]; then
        if [ "$log" = "-" ]; then
            say "==> FAILED: $what (exit $rc after $took)"
        else
            say "FAILED (exit $rc after $took)"
            say "    log: $log (its last lines:)"
            tail -n 25 "$log" | sed 's/^/    | /' >&2
        fi
        exit "$rc"
    fi
    if [ "$log" = "-" ]; then
        say "==> $what: done in $took"
    else
        say "$took"
    fi
}

# How to run what setup-venv installed.
say_how_to_run() {
    say "hekapy is installed in .venv: put it on PATH with"
    say "    . .venv/bin/activate"
    say "or run it by its full path, $PWD/.venv/bin/hekapy"
}
