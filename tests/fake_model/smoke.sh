#!/usr/bin/env bash
# Smoke test for ralph-fake-model: starts it on a free port, checks a streaming and a non-streaming
# answer, the models list, a 404, concurrency, the log and a clean exit on SIGTERM.
#   tests/fake_model/smoke.sh [PATH_TO_ralph-fake-model]   (default: build/tests/fake_model/ralph-fake-model)
set -euo pipefail
bin=${1:-$(dirname "$0")/../../build/tests/fake_model/ralph-fake-model}
tmp=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "smoke: FAIL: $*" >&2; [ -f "$tmp/err" ] && cat "$tmp/err" >&2; exit 1; }

"$bin" --port 0 --log "$tmp/log" >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 100); do grep -qs listening "$tmp/out" && break; sleep 0.05; done
line=$(head -n1 "$tmp/out")
[[ $line =~ ^fake-model\ listening\ on\ (http://127\.0\.0\.1:[0-9]+)$ ]] || fail "bad start line: '$line'"
url=${BASH_REMATCH[1]}

sys='You are opencode.\n<env>\n  Working directory: /tmp/smoke-proj\n</env>'
tools='[{"type":"function","function":{"name":"write","parameters":{}}}]'
chat() { curl -sS --max-time 10 "$url/v1/chat/completions" -H 'content-type: application/json' -d "$1"; }

# Streaming, with a write tool call and the promise on the first main request.
out=$(chat "{\"model\":\"fake-model\",\"stream\":true,\"tools\":$tools,\"messages\":[{\"role\":\"system\",\"content\":\"$sys\"},{\"role\":\"user\",\"content\":\"WRITE:a.txt COMPLETE_AFTER:1\"}]}")
grep -q '"object":"chat.completion.chunk"' <<<"$out" || fail "no chunks: $out"
grep -q '"name":"write"' <<<"$out" || fail "no write tool call: $out"
grep -q '\\"filePath\\":\\"/tmp/smoke-proj/a.txt\\"' <<<"$out" || fail "wrong filePath: $out"
grep -q '"finish_reason":"tool_calls"' <<<"$out" || fail "no tool_calls finish: $out"
grep -q '"usage":{"prompt_tokens":[0-9]*,"completion_tokens":[0-9]*,"total_tokens":[0-9]*}' <<<"$out" || fail "no usage: $out"
[ "$(tail -c 15 <<<"$out" | tr -d '\n')" = "data: [DONE]" ] || fail "stream does not end with [DONE]: $out"

# Non-streaming answer to the tool result: "Done." with the promise.
out=$(chat "{\"model\":\"m2\",\"stream\":false,\"tools\":$tools,\"messages\":[{\"role\":\"system\",\"content\":\"$sys\"},{\"role\":\"user\",\"content\":\"WRITE:a.txt COMPLETE_AFTER:1\"},{\"role\":\"tool\",\"tool_call_id\":\"x\",\"content\":\"ok\"}]}")
grep -q '"object":"chat.completion"' <<<"$out" || fail "not a chat.completion: $out"
grep -q '"content":"Done. <promise>COMPLETE</promise>"' <<<"$out" || fail "no promise after the tool result: $out"
grep -q '"model":"m2"' <<<"$out" || fail "model not echoed: $out"

# No tools: the title request.
out=$(chat '{"model":"fake-model","stream":false,"messages":[{"role":"user","content":"FAIL401"}]}')
grep -q '"content":"Fake title"' <<<"$out" || fail "no title: $out"

# Errors, models, 404.
code=$(curl -sS -o /dev/null -w '%{http_code}' "$url/v1/chat/completions" -d "{\"stream\":true,\"tools\":$tools,\"messages\":[{\"role\":\"user\",\"content\":\"FAIL401\"}]}")
[ "$code" = 401 ] || fail "FAIL401 gave $code"
curl -sS "$url/v1/models" | grep -q '"id":"m2"' || fail "models list lacks m2"
code=$(curl -sS -o /dev/null -w '%{http_code}' "$url/nope")
[ "$code" = 404 ] || fail "/nope gave $code"

# Concurrency: three 1 s answers in parallel take about 1 s, not 3.
start=$(date +%s%N)
for i in 1 2 3; do
    chat "{\"stream\":true,\"tools\":$tools,\"messages\":[{\"role\":\"user\",\"content\":\"SLOW:1000 KEY:c$i\"}]}" >"$tmp/slow$i" &
done
wait %2 %3 %4
ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$ms" -lt 2500 ] || fail "three SLOW:1000 requests took ${ms} ms: not concurrent"
grep -q '"content":"it."' "$tmp/slow1" || fail "slow answer: $(cat "$tmp/slow1")"

[ "$(wc -l <"$tmp/log")" -ge 8 ] || fail "log has $(wc -l <"$tmp/log") lines"
grep -q '"behaviour":"done-promise"' "$tmp/log" || fail "log lacks done-promise"

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ "$rc" = 0 ] || fail "exit status $rc after SIGTERM"
echo "smoke: ok"
