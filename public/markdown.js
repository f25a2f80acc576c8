// A tiny Markdown renderer for model output, safe by construction: the text is HTML-escaped
// first, then a small set of tags is added around the escaped text (paragraphs, fenced code
// blocks, inline code, bold/italic, headings, lists, and links to http(s) URLs only). No tag or
// attribute from the input ever reaches the output, so `innerHTML = renderMarkdown(text)` is
// safe. An unterminated code fence (a stream still in progress) renders as a code block.
//
// A plain ES module without dependencies: the playground imports it in the browser, and the unit
// tests import it in Node (test/server/markdown.test.ts).

const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes the five HTML-significant characters. */
export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;
const LIST_ITEM = /^\s{0,3}([-*+]|\d{1,9}[.)])\s+(.*)$/;
const HEADING = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^\s{0,3}([-*_])(\s*\1){2,}\s*$/;
// On escaped text: a URL ends at whitespace, a parenthesis or an escaped quote or angle bracket.
const URL_BODY = String.raw`https?:\/\/(?:(?!&(?:quot|#39|lt|gt);)[^\s()])+`;
const LINK = new RegExp(String.raw`\[([^\]\n]+)\]\((${URL_BODY})\)`, 'g');
const BARE_URL = new RegExp(String.raw`(^|[\s(;*_~])(${URL_BODY})`, 'g');
// Placeholders for links while emphasis is applied (NUL never survives from the input: stripped).
const HOLD = '\u0000';

function link(url, text) {
  return `<a href="${url}" target="_blank" rel="noopener noreferrer">${text}</a>`;
}

/** Sentence punctuation after a bare URL is not part of it (an entity's closing ';' is). */
function splitTrailing(found) {
  let end = found.length;
  while (end > 0) {
    const c = found[end - 1];
    if (',.:!?*_~'.includes(c) || (c === ';' && !/&(?:[a-z]+|#\d+);$/i.test(found.slice(0, end)))) end--;
    else break;
  }
  return [found.slice(0, end), found.slice(end)];
}

/** Emphasis and links on one run of text that holds no code span. Input: raw text; output: HTML. */
function renderText(raw) {
  const held = [];
  const hold = (html) => `${HOLD}${held.push(html) - 1}${HOLD}`;
  let s = escapeHtml(raw);
  s = s.replace(LINK, (_m, text, url) => hold(link(url, emphasis(text))));
  s = s.replace(BARE_URL, (_m, lead, found) => {
    const [url, tail] = splitTrailing(found);
    return lead + hold(link(url, url)) + tail;
  });
  s = emphasis(s);
  return s.replace(/\u0000(\d+)\u0000/g, (_m, i) => held[Number(i)]);
}

function emphasis(s) {
  return s
    .replace(/\*\*(?=\S)([^*]*?\S)\*\*/g, '<strong>$1</strong>')
    .replace(/(^|[^\w])__(?=\S)(.*?\S)__(?!\w)/g, '$1<strong>$2</strong>')
    .replace(/(^|[^*\w])\*(?=[^\s*])([^*]*?[^\s*])\*(?!\*)/g, '$1<em>$2</em>')
    .replace(/(^|[^\w])_(?=[^\s_])([^_]*?[^\s_])_(?!\w)/g, '$1<em>$2</em>')
    .replace(/~~(?=\S)(.*?\S)~~/g, '<del>$1</del>');
}

/** A line's inline Markdown: code spans verbatim, the rest through renderText. */
export function renderInline(raw) {
  let out = '';
  let last = 0;
  const code = /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/g;
  for (let m = code.exec(raw); m !== null; m = code.exec(raw)) {
    out += renderText(raw.slice(last, m.index));
    out += `<code>${escapeHtml(m[2].replace(/^ (.*) $/, '$1'))}</code>`;
    last = m.index + m[0].length;
  }
  return out + renderText(raw.slice(last));
}

/** Markdown text (model output) to HTML that carries no markup of the input. */
export function renderMarkdown(source) {
  const lines = String(source ?? '').replace(/\u0000/g, '\uFFFD').replace(/\r\n?/g, '\n').split('\n');
  const out = [];
  let paragraph = [];
  let list = null; // { tag: 'ul'|'ol', items: string[] }

  const flushParagraph = () => {
    if (paragraph.length > 0) out.push(`<p>${paragraph.map(renderInline).join('<br>')}</p>`);
    paragraph = [];
  };
  const flushList = () => {
    if (list) out.push(`<${list.tag}>${list.items.map((item) => `<li>${renderInline(item)}</li>`).join('')}</${list.tag}>`);
    list = null;
  };
  const flush = () => {
    flushParagraph();
    flushList();
  };

  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const fence = FENCE.exec(line);
    if (fence) {
      flush();
      const marker = fence[1];
      const lang = fence[2].replace(/[^\w+#.-]/g, '').slice(0, 32);
      const body = [];
      i++;
      while (i < lines.length && !(lines[i].trim().startsWith(marker) && lines[i].trim().replace(/[`~]/g, '') === '')) {
        body.push(lines[i]);
        i++;
      }
      const cls = lang ? ` class="language-${escapeHtml(lang)}"` : '';
      out.push(`<pre><code${cls}>${escapeHtml(body.join('\n'))}</code></pre>`);
      continue;
    }
    if (line.trim() === '') {
      flush();
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      flush();
      const level = Math.min(6, heading[1].length + 2);
      out.push(`<h${level}>${renderInline(heading[2])}</h${level}>`);
      continue;
    }
    if (RULE.test(line)) {
      flush();
      out.push('<hr>');
      continue;
    }
    const item = LIST_ITEM.exec(line);
    if (item) {
      flushParagraph();
      const tag = /\d/.test(item[1]) ? 'ol' : 'ul';
      if (list && list.tag !== tag) flushList();
      list ??= { tag, items: [] };
      list.items.push(item[2]);
      continue;
    }
    if (list && /^\s+\S/.test(line)) {
      // A continuation line of the last item.
      list.items[list.items.length - 1] += ` ${line.trim()}`;
      continue;
    }
    flushList();
    paragraph.push(line);
  }
  flush();
  return out.join('\n');
}
