// The playground: a chat page for this server's OpenAI-compatible API. No framework and no build
// step; everything it loads comes from this server (see the Content-Security-Policy header).
// Model output only reaches the page through renderMarkdown, which escapes it first.
import { renderMarkdown } from './markdown.js';

const KEY_STORAGE = 'phi4-playground.api-key';
const $ = (id) => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el;
};

const ui = {
  settings: $('settings'),
  toggleSettings: $('toggle-settings'),
  keyForm: $('key-form'),
  keyInput: $('api-key'),
  keyHint: $('key-hint'),
  model: $('model'),
  system: $('system'),
  temperature: $('temperature'),
  temperatureValue: $('temperature-value'),
  topP: $('top-p'),
  topPValue: $('top-p-value'),
  maxTokens: $('max-tokens'),
  apiBase: $('api-base'),
  messages: $('messages'),
  empty: $('empty'),
  error: $('error'),
  stats: $('stats'),
  composer: $('composer'),
  prompt: $('prompt'),
  send: $('send'),
  stop: $('stop'),
  newChat: $('new-chat'),
};

/** The conversation as sent back to the server: user and assistant turns (the system prompt is added per request). */
let conversation = [];
/** The generation in progress: { controller, stoppedByUser }. */
let current = null;
let modelsLoaded = false;
let modelRetry;

// ---------------------------------------------------------------------------------------------
// API key (session storage only) and requests

function storedKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE) ?? '';
  } catch {
    return '';
  }
}

function storeKey(key) {
  try {
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
  } catch {
    // storage disabled: the key lives until the page is closed
  }
  memoryKey = key;
}

let memoryKey = storedKey();

function apiHeaders() {
  const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  if (memoryKey) headers.authorization = `Bearer ${memoryKey}`;
  return headers;
}

function askForKey(rejected) {
  ui.keyForm.hidden = false;
  ui.settings.classList.add('open');
  ui.toggleSettings.setAttribute('aria-expanded', 'true');
  ui.keyHint.textContent = rejected
    ? 'The server did not accept this API key. Enter another one.'
    : "This server needs an API key. It is kept in this tab's session storage only.";
  ui.keyInput.focus();
}

/** The error envelope {"error":{"message","code"}} of a failed response, if it has one. */
async function errorBody(res) {
  try {
    const body = await res.json();
    return body && typeof body === 'object' && body.error && typeof body.error === 'object' ? body.error : {};
  } catch {
    return {};
  }
}

/** What to tell a person about a failed request. */
function readableError(status, error, retryAfter) {
  const code = typeof error.code === 'string' ? error.code : '';
  const message = typeof error.message === 'string' && error.message ? error.message : `HTTP ${status}`;
  switch (status) {
    case 400:
      if (code === 'context_length_exceeded') {
        return `The conversation is too long for the model's context window. Start a new chat, shorten your message or lower Max tokens. (${message})`;
      }
      return `The server refused the request: ${message}`;
    case 401:
      return 'This server needs a valid API key.';
    case 408:
      return `The request timed out (${code || 'timeout'}): ${message}`;
    case 413:
      return `The conversation is larger than the server accepts in one request: ${message}`;
    case 429:
      return `The server is busy (its queue is full). Try again ${retryAfter ? `in ${retryAfter} s` : 'in a moment'}.`;
    case 503:
      if (code === 'model_not_ready') return 'The model is still loading. Try again in a moment.';
      if (code === 'shutting_down') return 'The server is shutting down and takes no new requests.';
      return `The server is unavailable: ${message}`;
    default:
      return `Error ${status}${code ? ` (${code})` : ''}: ${message}`;
  }
}

function showError(text) {
  ui.error.textContent = text;
  ui.error.hidden = false;
}

function clearError() {
  ui.error.hidden = true;
  ui.error.textContent = '';
}

// ---------------------------------------------------------------------------------------------
// Models

async function loadModels() {
  clearTimeout(modelRetry);
  let res;
  try {
    res = await fetch('/v1/models', { headers: apiHeaders() });
  } catch {
    showError('Cannot reach the server. Retrying…');
    modelRetry = setTimeout(loadModels, 3000);
    return false;
  }
  if (res.status === 401) {
    await res.body?.cancel();
    askForKey(Boolean(memoryKey));
    return false;
  }
  if (!res.ok) {
    const error = await errorBody(res);
    showError(readableError(res.status, error, res.headers.get('retry-after')));
    if (res.status === 503 && error.code === 'model_not_ready') modelRetry = setTimeout(loadModels, 2000);
    return false;
  }
  const body = await res.json();
  // Aliases name the same model twice; a failed model is shown but cannot be picked.
  const models = Array.isArray(body.data) ? body.data.filter((m) => !m.alias_of) : [];
  const selected = ui.model.value;
  ui.model.replaceChildren(...models.map((m) => modelOption(m, selected)));
  ui.keyForm.hidden = true;
  clearError();
  modelsLoaded = models.some((m) => m.state !== 'failed');
  return modelsLoaded;
}

function modelOption(m, selected) {
  const id = String(m.id);
  const note = m.state === 'failed' ? ' (failed to load)' : m.state && m.state !== 'loaded' ? ' (loads on first use)' : '';
  const option = new Option(id + note, id, false, id === selected);
  option.disabled = m.state === 'failed';
  if (m.error) option.title = String(m.error);
  return option;
}

// ---------------------------------------------------------------------------------------------
// Messages

function isNearBottom() {
  const m = ui.messages;
  return m.scrollHeight - m.scrollTop - m.clientHeight < 48;
}

function scrollToBottom() {
  ui.messages.scrollTop = ui.messages.scrollHeight;
}

function addBubble(role) {
  ui.empty.hidden = true;
  const wrap = document.createElement('div');
  wrap.className = `message ${role}`;
  const who = document.createElement('div');
  who.className = 'who';
  who.textContent = role === 'user' ? 'You' : 'Assistant';
  const body = document.createElement('div');
  body.className = 'body';
  if (role === 'assistant') body.dataset.testid = 'assistant-message';
  else body.dataset.testid = 'user-message';
  const note = document.createElement('div');
  note.className = 'note';
  wrap.append(who, body, note);
  ui.messages.append(wrap);
  scrollToBottom();
  return { wrap, body, note };
}

/** Re-renders an assistant bubble at most once per frame while text streams in. */
function renderer(body) {
  let text = '';
  let scheduled = false;
  const paint = () => {
    scheduled = false;
    const stick = isNearBottom();
    body.innerHTML = renderMarkdown(text); // escaped by renderMarkdown: no markup from the model survives
    if (stick) scrollToBottom();
  };
  return {
    get text() {
      return text;
    },
    append(piece) {
      text += piece;
      if (!scheduled) {
        scheduled = true;
        requestAnimationFrame(paint);
      }
    },
    flush: paint,
  };
}

// ---------------------------------------------------------------------------------------------
// Figures for the current answer

const statEls = Object.fromEntries([...ui.stats.querySelectorAll('[data-stat]')].map((el) => [el.dataset.stat, el]));

function setStats(values) {
  for (const [key, value] of Object.entries(values)) if (statEls[key]) statEls[key].textContent = value;
}

function resetStats() {
  setStats({ ttft: '–', speed: '–', prompt: '–', completion: '–', cached: '–', status: '' });
}

const ms = (x) => (x < 1000 ? `${Math.round(x)} ms` : `${(x / 1000).toFixed(2)} s`);

// ---------------------------------------------------------------------------------------------
// Server-sent events over fetch

/** Yields the data of each event of an SSE response body. */
async function* sseData(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let data = [];
  try {
    for (;;) {
      const { value, done } = await reader.read();
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      const lines = buffer.split(/\r\n|\r|\n/);
      buffer = done ? '' : lines.pop();
      for (const line of lines) {
        if (line === '') {
          if (data.length > 0) yield data.join('\n');
          data = [];
        } else if (line.startsWith('data:')) {
          data.push(line.slice(line.startsWith('data: ') ? 6 : 5));
        } // comments (":") and other fields are ignored
      }
      if (done) {
        if (data.length > 0) yield data.join('\n');
        return;
      }
    }
  } finally {
    reader.releaseLock();
  }
}

// ---------------------------------------------------------------------------------------------
// Sending

function setGenerating(on) {
  ui.send.disabled = on;
  ui.stop.disabled = !on;
  ui.composer.classList.toggle('busy', on);
}

function requestBody() {
  const messages = [];
  const system = ui.system.value.trim();
  if (system) messages.push({ role: 'system', content: system });
  messages.push(...conversation);
  const body = {
    model: ui.model.value,
    messages,
    stream: true,
    stream_options: { include_usage: true },
    temperature: Number(ui.temperature.value),
    top_p: Number(ui.topP.value),
  };
  const max = Number.parseInt(ui.maxTokens.value, 10);
  if (Number.isFinite(max) && max > 0) body.max_tokens = max;
  return body;
}

async function send() {
  const text = ui.prompt.value.trim();
  if (!text || current) return;
  clearError();
  if (!modelsLoaded && !(await loadModels())) return;

  current = { controller: new AbortController(), stoppedByUser: false };
  const { controller } = current;
  setGenerating(true);
  ui.prompt.value = '';
  conversation.push({ role: 'user', content: text });
  const userBubble = addBubble('user');
  userBubble.body.textContent = text;
  const answer = addBubble('assistant');
  answer.wrap.classList.add('streaming');
  const out = renderer(answer.body);

  resetStats();
  setStats({ status: 'waiting…' });
  const t0 = performance.now();
  let tFirst;
  let tLast;
  let pieces = 0;
  let usage;
  let finish;
  let failure;

  /** Takes the turn back: the request never produced an answer. */
  const undo = () => {
    conversation.pop();
    userBubble.wrap.remove();
    answer.wrap.remove();
    ui.prompt.value = text;
    if (!ui.messages.querySelector('.message')) ui.empty.hidden = false;
  };

  try {
    const res = await fetch('/v1/chat/completions', {
      method: 'POST',
      headers: apiHeaders(),
      body: JSON.stringify(requestBody()),
      signal: controller.signal,
    });
    if (!res.ok) {
      const error = await errorBody(res);
      undo();
      if (res.status === 401) {
        askForKey(Boolean(memoryKey));
        setStats({ status: 'API key needed' });
      } else {
        showError(readableError(res.status, error, res.headers.get('retry-after')));
        setStats({ status: `error ${res.status}` });
      }
      return;
    }
    setStats({ status: 'generating…' });
    for await (const data of sseData(res.body)) {
      if (data === '[DONE]') break;
      let chunk;
      try {
        chunk = JSON.parse(data);
      } catch {
        continue;
      }
      if (chunk.error) {
        failure = chunk.error;
        continue;
      }
      if (chunk.usage) usage = chunk.usage;
      const choice = Array.isArray(chunk.choices) ? chunk.choices[0] : undefined;
      if (!choice) continue;
      const now = performance.now();
      tFirst ??= now;
      const content = choice.delta?.content;
      if (typeof content === 'string' && content.length > 0) {
        out.append(content);
        pieces++;
        tLast = now;
        setStats({
          ttft: ms(tFirst - t0),
          completion: `~${pieces}`,
          speed: pieces > 1 && tLast > tFirst ? `${((pieces - 1) / ((tLast - tFirst) / 1000)).toFixed(1)} tok/s` : '–',
        });
      }
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  } catch (err) {
    if (!(err instanceof DOMException && err.name === 'AbortError')) {
      if (!out.text) {
        undo();
        showError(`Cannot reach the server: ${err instanceof Error ? err.message : String(err)}`);
        setStats({ status: 'error' });
        return;
      }
      failure = { message: 'the connection was lost' };
    }
  } finally {
    if (current?.controller === controller) {
      const stopped = current.stoppedByUser;
      current = null;
      setGenerating(false);
      answer.wrap.classList.remove('streaming');
      if (answer.wrap.isConnected) finishAnswer({ answer, out, stopped, usage, finish, failure, t0, tFirst, tLast, pieces });
    }
  }
}

function finishAnswer({ answer, out, stopped, usage, finish, failure, t0, tFirst, tLast, pieces }) {
  out.flush();
  if (out.text) conversation.push({ role: 'assistant', content: out.text });
  else answer.body.textContent = stopped ? '(stopped before any text)' : '(no text)';
  const completion = usage?.completion_tokens ?? pieces;
  const figures = {
    completion: usage ? String(usage.completion_tokens) : pieces ? `~${pieces}` : '–',
    prompt: usage ? String(usage.prompt_tokens) : '–',
    cached: usage ? String(usage.prompt_tokens_details?.cached_tokens ?? 0) : '–',
  };
  if (tFirst !== undefined) figures.ttft = ms(tFirst - t0);
  if (tFirst !== undefined && tLast !== undefined && tLast > tFirst && completion > 1) {
    figures.speed = `${((completion - 1) / ((tLast - tFirst) / 1000)).toFixed(1)} tok/s`;
  }
  let status = 'done';
  if (failure) {
    status = 'error';
    showError(`The answer was cut short: ${failure.message ?? 'server error'}`);
    answer.note.textContent = 'cut short by a server error';
  } else if (stopped) {
    status = 'stopped';
    answer.note.textContent = 'stopped';
  } else if (finish === 'length') {
    status = 'done (max tokens)';
    answer.note.textContent = 'reached the token limit';
  } else if (finish) {
    status = `done (${finish})`;
  }
  figures.status = status;
  setStats(figures);
}

function stop() {
  if (!current) return;
  current.stoppedByUser = true;
  current.controller.abort();
}

function newChat() {
  stop();
  conversation = [];
  for (const m of ui.messages.querySelectorAll('.message')) m.remove();
  ui.empty.hidden = false;
  clearError();
  resetStats();
  ui.prompt.value = '';
  ui.prompt.focus();
}

// ---------------------------------------------------------------------------------------------
// Wiring

ui.composer.addEventListener('submit', (event) => {
  event.preventDefault();
  void send();
});
ui.prompt.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    void send();
  } else if (event.key === 'Escape' && current) {
    event.preventDefault();
    stop();
  }
});
ui.stop.addEventListener('click', stop);
ui.newChat.addEventListener('click', newChat);
ui.keyForm.addEventListener('submit', (event) => {
  event.preventDefault();
  storeKey(ui.keyInput.value.trim());
  ui.keyInput.value = '';
  void loadModels().then((ok) => {
    if (ok) ui.prompt.focus();
  });
});
ui.toggleSettings.addEventListener('click', () => {
  const open = ui.settings.classList.toggle('open');
  ui.toggleSettings.setAttribute('aria-expanded', String(open));
});
for (const [input, output] of [
  [ui.temperature, ui.temperatureValue],
  [ui.topP, ui.topPValue],
]) {
  const show = () => (output.textContent = input.value);
  input.addEventListener('input', show);
  show();
}
ui.apiBase.textContent = `${location.origin}/v1`;
resetStats();
void loadModels();
