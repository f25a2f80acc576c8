import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StopStringMatcher } from '../../src/server/stop-strings.ts';

/** Feeds deltas, returns the emitted text and whether a stop matched. */
function run(stops: string[], deltas: string[]): { text: string; stopped: boolean; emitted: string[] } {
  const m = new StopStringMatcher(stops);
  const emitted: string[] = [];
  for (const d of deltas) {
    const r = m.push(d);
    emitted.push(r.text);
    if (r.stopped) return { text: emitted.join(''), stopped: true, emitted };
  }
  emitted.push(m.flush());
  return { text: emitted.join(''), stopped: false, emitted };
}

describe('StopStringMatcher', () => {
  it('passes text through without stop strings', () => {
    assert.deepEqual(run([], ['a', 'b', 'c']), { text: 'abc', stopped: false, emitted: ['a', 'b', 'c', ''] });
  });

  it('stops inside a single delta and drops the stop string and the rest', () => {
    assert.deepEqual(run(['STOP'], ['helloSTOPworld']).text, 'hello');
  });

  it('never emits a stop string spanning several deltas', () => {
    const r = run(['</end>'], ['abc<', '/e', 'n', 'd>tail']);
    assert.equal(r.stopped, true);
    assert.equal(r.text, 'abc');
    for (const piece of r.emitted) assert.ok(!piece.includes('<'), `leaked "${piece}"`);
  });

  it('holds back a possible prefix and releases it when it cannot match', () => {
    const m = new StopStringMatcher(['abc']);
    // "ab" is held back: it may begin "abc".
    assert.deepEqual(m.push('xxab'), { text: 'xx', stopped: false });
    assert.deepEqual(m.push('d'), { text: 'abd', stopped: false });
    assert.equal(m.flush(), '');
  });

  it('releases held text at the end of generation', () => {
    assert.equal(run(['abc'], ['xa', 'b']).text, 'xab');
  });

  it('re-checks an overlapping prefix after a failed partial match', () => {
    // "aab" contains "ab" starting inside the first partial candidate.
    assert.equal(run(['ab'], ['a', 'a', 'b', 'zzz']).text, 'a');
  });

  it('picks the earliest match among several stop strings', () => {
    assert.equal(run(['world', 'lo'], ['hello world']).text, 'hel');
    assert.equal(run(['xyz', 'b'], ['ab', 'xyz']).text, 'a');
  });

  it('ignores empty stop strings', () => {
    assert.equal(run(['', 'q'], ['abc']).text, 'abc');
  });

  it('handles multi-byte characters and surrogate pairs in stop strings', () => {
    assert.equal(run(['😀!'], ['a😀', '!b']).text, 'a');
    assert.equal(run(['日本'], ['こんにちは日', '本語']).text, 'こんにちは');
  });

  it('emits nothing after stopping', () => {
    const m = new StopStringMatcher(['x']);
    assert.deepEqual(m.push('axb'), { text: 'a', stopped: true, match: 'x' });
    assert.deepEqual(m.push('more'), { text: '', stopped: true });
    assert.equal(m.flush(), '');
  });

  it('concatenation equals single-shot processing for every split', () => {
    const text = 'the quick brown fox jumps over the lazy dog';
    const stops = ['fox j', 'zz', 'the l'];
    const whole = run(stops, [text]).text;
    for (let i = 0; i <= text.length; i++) {
      for (let j = i; j <= text.length; j += 3) {
        assert.equal(run(stops, [text.slice(0, i), text.slice(i, j), text.slice(j)]).text, whole);
      }
    }
  });
});
