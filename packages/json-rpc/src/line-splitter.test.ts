import { describe, expect, it } from 'vitest';
import { idFromOversizedLine, LineSplitter, type OversizedLine } from './line-splitter.js';

function split(maxLineBytes: number, chunks: (string | Buffer)[], end = false) {
  const lines: string[] = [];
  const oversized: OversizedLine[] = [];
  const splitter = new LineSplitter(maxLineBytes, {
    onLine: (line) => lines.push(line),
    onOversized: (line) => oversized.push(line),
  });
  for (const chunk of chunks) splitter.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  if (end) splitter.end();
  return { lines, oversized };
}

describe('LineSplitter', () => {
  it('splits lines within and across chunks, dropping \\r and blank lines', () => {
    expect(split(100, ['a\nb', 'c\r\n\n', '  \nd\n']).lines).toEqual(['a', 'bc', 'd']);
  });

  it('keeps a partial line until its newline, and yields it at end() without one', () => {
    expect(split(100, ['{"a":', '1}']).lines).toEqual([]);
    expect(split(100, ['{"a":', '1}'], true).lines).toEqual(['{"a":1}']);
  });

  it('counts bytes, not characters, and keeps a UTF-8 character split across chunks whole', () => {
    const text = Buffer.from('é\n');
    expect(split(100, [text.subarray(0, 1), text.subarray(1)]).lines).toEqual(['é']);
    expect(split(2, ['éé\n']).oversized).toMatchObject([{ bytes: 4 }]);
    expect(split(4, ['éé\n']).lines).toEqual(['éé']);
  });

  it('decodes a line over many chunks: a 4-byte character across three, a \\r before the newline chunk', () => {
    const emoji = Buffer.from('😀');
    const chunks = [
      'x',
      emoji.subarray(0, 1),
      emoji.subarray(1, 3),
      Buffer.concat([emoji.subarray(3), Buffer.from('é\r')]),
    ];
    expect(split(100, [...chunks, '\n']).lines).toEqual(['x😀é']);
    expect(split(100, [...chunks, '\nnext\n']).lines).toEqual(['x😀é', 'next']);
    expect(split(100, ['  ', ' \r', '\n']).lines).toEqual([]);
  });

  it('drops an over-long line whole, keeping its size and ends, and reads on', () => {
    const long = `{"id":7,${'x'.repeat(10_000)}"end":1}`;
    const chunks = [long.slice(0, 3000), long.slice(3000, 9000), `${long.slice(9000)}\nnext\n`];
    const { lines, oversized } = split(1000, chunks);
    expect(lines).toEqual(['next']);
    expect(oversized).toHaveLength(1);
    expect(oversized[0]!.bytes).toBe(long.length);
    expect(oversized[0]!.head.startsWith('{"id":7,')).toBe(true);
    expect(oversized[0]!.tail.endsWith('"end":1}')).toBe(true);
    expect(oversized[0]!.head.length).toBeLessThanOrEqual(256);
  });

  it('reports an over-long final line at end()', () => {
    expect(split(10, ['x'.repeat(50)], true).oversized).toMatchObject([{ bytes: 50 }]);
  });

  it('accepts a line of exactly maxLineBytes', () => {
    expect(split(5, ['12345\n']).lines).toEqual(['12345']);
    expect(split(5, ['123456\n']).oversized).toHaveLength(1);
  });

  it('rejects a limit that is not a positive integer', () => {
    expect(() => new LineSplitter(0, { onLine() {}, onOversized() {} })).toThrow(TypeError);
  });
});

describe('idFromOversizedLine', () => {
  const line = (head: string, tail: string) => ({ bytes: 1e6, head, tail });

  it('finds a leading id, or a top-level id at the very end', () => {
    expect(idFromOversizedLine(line('{"jsonrpc":"2.0","id":42,"result":"xx', 'xx"}'))).toBe(42);
    expect(idFromOversizedLine(line('{"id": 3, "result"', '"}'))).toBe(3);
    expect(idFromOversizedLine(line('{"jsonrpc":"2.0","result":"xx', 'xxx","id":9}'))).toBe(9);
  });

  it('ignores ids nested inside the result', () => {
    expect(idFromOversizedLine(line('{"jsonrpc":"2.0","result":{"id":5,', 'x"}}'))).toBeUndefined();
    expect(idFromOversizedLine(line('{"result":[', '{"id":5}]}'))).toBeUndefined();
    expect(idFromOversizedLine(line('garbage', 'garbage'))).toBeUndefined();
  });
});
