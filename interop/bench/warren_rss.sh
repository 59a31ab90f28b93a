# Sourced by the bench scripts: starts a release Warren ($bin/warren) on a
# free port with a fresh data directory, waits until it listens, and samples
# its RSS every 0.5 s into $rss_log; all of it goes when the script exits.
# Sets: data, port, pid, rss_log, sampler.
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin/warren" --listen "127.0.0.1:$port" --admin-listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
  --data-dir "$data" --log-level warn &
pid=$!
rss_log=$(mktemp)
trap 'kill $pid 2>/dev/null; kill ${sampler:-} 2>/dev/null; rm -rf "$data" "$rss_log"' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
(while kill -0 $pid 2>/dev/null; do
  echo "$(date +%s.%N) $(awk '/VmRSS/ {print $2}' /proc/$pid/status)" >>"$rss_log"
  sleep 0.5
done) &
sampler=$!
