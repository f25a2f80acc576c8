/**
 * The playground's Markdown renderer (public/markdown.js, the module the page itself imports):
 * model output is escaped before any tag is added, so hostile output renders as inert text.
 * The output is checked structurally: every tag in it must be one the renderer makes, with only
 * its own attributes, and every link must point to an http(s) URL.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { escapeHtml, renderMarkdown } from '../../public/markdown.js';

const TAGS = new Set(['p', 'br', 'pre', 'code', 'strong', 'em', 'del', 'ul', 'ol', 'li', 'a', 'h3', 'h4', 'h5', 'h6', 'hr']);
const ATTRIBUTES: Record<string, Set<string>> = {
  a: new Set(['href', 'target', 'rel']),
  code: new Set(['class']),
};

interface Tag {
  name: string;
  attributes: Record<string, string>;
}

/** Every tag in `html` (start and end), with its attributes; fails on anything that is not well-formed. */
function tagsOf(html: string): Tag[] {
  const tags: Tag[] = [];
  for (const m of html.matchAll(/<(\/?)([^\s>/]*)([^>]*)>/g)) {
    const attributes: Record<string, string> = {};
    const rest = m[3].trim();
    const attr = /([^\s=]+)="([^"]*)"/g;
    let consumed = '';
    for (const a of rest.matchAll(attr)) {
      attributes[a[1]] = a[2];
      consumed += a[0];
    }
    assert.equal(rest.replace(attr, '').trim(), '', `only quoted attributes in <${m[2]}${m[3]}>`);
    assert.ok(consumed.length === 0 || m[1] === '', 'end tags carry no attributes');
    tags.push({ name: m[2].toLowerCase(), attributes });
  }
  return tags;
}

/** Decodes the entities the renderer emits (what a browser would see in an attribute value). */
const decode = (s: string): string =>
  s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&');

function assertInert(html: string): void {
  assert.ok(!/<(?![/]?(p|br|pre|code|strong|em|del|ul|ol|li|a|h[3-6]|hr)[\s>])/i.test(html), `no foreign tag in ${html}`);
  for (const tag of tagsOf(html)) {
    assert.ok(TAGS.has(tag.name), `<${tag.name}> is one of the renderer's tags`);
    for (const [name, value] of Object.entries(tag.attributes)) {
      assert.ok(ATTRIBUTES[tag.name]?.has(name), `<${tag.name} ${name}> is one of the renderer's attributes`);
      assert.ok(!/^on/i.test(name), 'no event handler attribute');
      if (name === 'href') {
        assert.match(decode(value), /^https?:\/\//, `links go to http(s) only: ${value}`);
        assert.equal(tag.attributes.rel, 'noopener noreferrer');
      }
    }
  }
  assert.ok(!/javascript:/i.test([...html.matchAll(/href="([^"]*)"/g)].map((m) => decode(m[1])).join(' ')), 'no javascript: href');
}

describe('playground Markdown renderer', () => {
  it('renders <script>, <img onerror> and javascript: links inert', () => {
    const hostile = [
      '<script>alert(1)</script>',
      '<img src=x onerror=alert(1)>',
      '[x](javascript:alert(1))',
      '[x](JaVaScRiPt:alert(1))',
      '[x](  javascript:alert(1))',
      '<a href="javascript:alert(1)">click</a>',
      '<svg/onload=alert(1)>',
      '[x](https://a.example/"onmouseover="alert(1))',
      'https://a.example/"><script>alert(1)</script>',
      '**<img src=x onerror=alert(1)>**',
      '`<script>alert(1)</script>`',
      '```html\n<script>alert(1)</script>\n```',
      '```"><script>alert(1)</script>\ncode\n```',
      '- <iframe src="javascript:alert(1)"></iframe>',
      '# <b onclick=alert(1)>title</b>',
      '\u0000<script>alert(1)</script>',
    ];
    for (const text of hostile) {
      const html = renderMarkdown(text);
      assertInert(html);
      assert.ok(!/<script|<img|<svg|<iframe|<b\b/i.test(html), `no executable tag in ${html}`);
    }
    // The markup is shown as text, escaped.
    assert.equal(renderMarkdown('<script>alert(1)</script>'), '<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>');
    assert.equal(renderMarkdown('<img src=x onerror=alert(1)>'), '<p>&lt;img src=x onerror=alert(1)&gt;</p>');
    assert.equal(renderMarkdown('[x](javascript:alert(1))'), '<p>[x](javascript:alert(1))</p>');
    // All at once, as one answer.
    assertInert(renderMarkdown(hostile.join('\n\n')));
  });

  it('renders the usual Markdown of model answers', () => {
    const html = renderMarkdown(
      [
        '## Result',
        '',
        'Use **bold**, *italic* and `npm start`.',
        'Second line.',
        '',
        '- one',
        '- two with [docs](https://example.com/a_b?x=1&y=2)',
        '',
        '1. first',
        '2. second',
        '',
        '```ts',
        'const a = 1 < 2 && "x";',
        '```',
        '',
        'See https://example.com/page.',
      ].join('\n'),
    );
    assertInert(html);
    assert.equal(
      html,
      [
        '<h4>Result</h4>',
        '<p>Use <strong>bold</strong>, <em>italic</em> and <code>npm start</code>.<br>Second line.</p>',
        '<ul><li>one</li><li>two with <a href="https://example.com/a_b?x=1&amp;y=2" target="_blank" rel="noopener noreferrer">docs</a></li></ul>',
        '<ol><li>first</li><li>second</li></ol>',
        '<pre><code class="language-ts">const a = 1 &lt; 2 &amp;&amp; &quot;x&quot;;</code></pre>',
        '<p>See <a href="https://example.com/page" target="_blank" rel="noopener noreferrer">https://example.com/page</a>.</p>',
      ].join('\n'),
    );
  });

  it('renders a code block still being streamed (no closing fence yet)', () => {
    assert.equal(renderMarkdown('Here:\n```py\nprint("<hi>")'), '<p>Here:</p>\n<pre><code class="language-py">print(&quot;&lt;hi&gt;&quot;)</code></pre>');
  });

  it('leaves identifiers with underscores and stray asterisks alone', () => {
    assert.equal(renderMarkdown('snake_case_name and 2 * 3 * 4'), '<p>snake_case_name and 2 * 3 * 4</p>');
  });

  it('escapes all five HTML-significant characters', () => {
    assert.equal(escapeHtml(`<a href="x" title='y'>&</a>`), '&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;');
  });
});
