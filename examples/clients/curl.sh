#!/bin/sh
# curl against a sharedLLM host with a device key.
#   SHAREDLLM_URL=http://gpu-box.local:8080 SHAREDLLM_KEY=sllm_… MODEL=qwen3:1.7b sh curl.sh
# Over HTTPS with the host's certificate authority: add --cacert ca.crt (download it from /ca.crt).
set -eu
: "${SHAREDLLM_URL:?set SHAREDLLM_URL, e.g. http://gpu-box.local:8080}"
: "${SHAREDLLM_KEY:?set SHAREDLLM_KEY to your device key}"
MODEL="${MODEL:-qwen3:1.7b}"
auth="Authorization: Bearer $SHAREDLLM_KEY"

echo "# models this device may use (Ollama API)"
curl -fsS -H "$auth" "$SHAREDLLM_URL/ollama/api/tags"
echo
echo "# a streamed chat (Ollama API, one JSON object per line)"
curl -fsS -N -H "$auth" "$SHAREDLLM_URL/ollama/api/chat" \
  -d "{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"Say hello\"}]}"
echo "# the same through the OpenAI API"
curl -fsS -H "$auth" -H 'Content-Type: application/json' "$SHAREDLLM_URL/v1/chat/completions" \
  -d "{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"Say hello\"}]}"
echo
