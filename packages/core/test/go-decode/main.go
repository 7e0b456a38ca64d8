// What Ollama reads from a request body: each stdin line is {"shape": "...", "body": "<raw JSON>"}; the
// body is decoded with Go's encoding/json into a struct carrying the json tags of Ollama's request struct
// for that route (api/types.go and openai/openai.go, ollama v0.33), every field kept raw. Prints one line per
// input: {"field": <the raw value Go assigned>} for the fields that were set, or {"__error": "..."}.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
)

var structs = map[string][]string{
	"chat":              {"model", "messages", "stream", "format", "keep_alive", "tools", "options", "think", "truncate", "shift", "_debug_render_only", "logprobs", "top_logprobs"},
	"generate":          {"model", "prompt", "suffix", "system", "template", "context", "stream", "raw", "format", "keep_alive", "images", "options", "think", "truncate", "shift", "_debug_render_only", "logprobs", "top_logprobs"},
	"embed":             {"model", "input", "keep_alive", "truncate", "dimensions", "options"},
	"embeddings":        {"model", "prompt", "keep_alive", "options"},
	"show":              {"model", "system", "template", "verbose", "options", "name"},
	"pull":              {"model", "insecure", "username", "password", "stream", "name"},
	"openai_chat":       {"model", "messages", "stream", "stream_options", "max_tokens", "seed", "stop", "temperature", "frequency_penalty", "presence_penalty", "top_p", "response_format", "tools", "reasoning", "reasoning_effort", "logprobs", "top_logprobs", "_debug_render_only"},
	"openai_completion": {"model", "prompt", "frequency_penalty", "max_tokens", "presence_penalty", "seed", "stop", "stream", "stream_options", "temperature", "top_p", "suffix", "logprobs", "_debug_render_only"},
	"openai_embed":      {"input", "model", "dimensions", "encoding_format"},
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for in.Scan() {
		var req struct{ Shape, Body string }
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			panic(err)
		}
		names, ok := structs[req.Shape]
		if !ok {
			panic("unknown shape " + req.Shape)
		}
		fields := make([]reflect.StructField, len(names))
		for i, n := range names {
			fields[i] = reflect.StructField{Name: fmt.Sprintf("F%d", i), Type: reflect.TypeOf(json.RawMessage{}), Tag: reflect.StructTag(fmt.Sprintf(`json:"%s"`, n))}
		}
		v := reflect.New(reflect.StructOf(fields))
		result := map[string]json.RawMessage{}
		if err := json.Unmarshal([]byte(req.Body), v.Interface()); err != nil {
			msg, _ := json.Marshal(err.Error())
			result["__error"] = msg
		} else {
			for i, n := range names {
				if raw := v.Elem().Field(i).Interface().(json.RawMessage); raw != nil {
					result[n] = raw
				}
			}
		}
		line, _ := json.Marshal(result)
		out.Write(line)
		out.WriteByte('\n')
	}
}
