# Sourced by the shell tests: check DESCRIPTION COMMAND... runs the command,
# counts it in $passed or $failed, and on failure prints the description and
# the command's output. Needs $tmp (a scratch directory) and passed=0 failed=0.
check() {
    desc=$1
    shift
    if "$@" > "$tmp/check.out" 2>&1; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL: $desc"
        sed 's/^/    /' "$tmp/check.out" | head -40
    fi
}
