/**
 * Phi-4-mini's chat template, extended to render an assistant turn's tool calls (the official
 * template drops them, so a conversation could not show the model its own calls). Everything else
 * renders exactly as the official template does; a `tool` message becomes `<|tool|>...<|end|>`, as
 * the official template already renders it. `tool_calls` is the calls' JSON text in the format the
 * model writes them: `[{"name": ..., "arguments": {...}}]`.
 */
export const PHI4_TOOL_CALL_TEMPLATE =
  "{% for message in messages %}" +
  "{% if message['role'] == 'system' and 'tools' in message and message['tools'] is not none %}" +
  "{{ '<|' + message['role'] + '|>' + message['content'] + '<|tool|>' + message['tools'] + '<|/tool|>' + '<|end|>' }}" +
  "{% elif message['role'] == 'assistant' and 'tool_calls' in message and message['tool_calls'] is not none %}" +
  "{{ '<|assistant|>' + message['content'] + '<|tool_call|>' + message['tool_calls'] + '<|/tool_call|>' + '<|end|>' }}" +
  "{% else %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}{% endif %}" +
  "{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}";
