import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { formatDuration, formatForward, formatMemory } from './format.js';
import { Output } from './output.js';
import { createStyle } from './style.js';
import { renderTable } from './table.js';

function capture(options: { json: boolean; tty: boolean; color: boolean }) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const text = { out: '', err: '' };
  stdout.on('data', (c: Buffer) => (text.out += c.toString()));
  stderr.on('data', (c: Buffer) => (text.err += c.toString()));
  return { out: new Output(stdout, stderr, options), text };
}

describe('renderTable', () => {
  const rows = [
    ['web', 'running', '10.62.0.2'],
    ['database-1', 'stopped', '-'],
  ];

  it('aligns columns under an upper-case header on a terminal', () => {
    expect(renderTable(['name', 'status', 'ip'], rows, { tty: true, style: createStyle(false) })).toEqual([
      'NAME         STATUS    IP',
      'web          running   10.62.0.2',
      'database-1   stopped   -',
    ]);
  });

  it('prints tab-separated rows without a header when not on a terminal', () => {
    expect(renderTable(['name', 'status', 'ip'], rows, { tty: false, style: createStyle(false) })).toEqual([
      'web\trunning\t10.62.0.2',
      'database-1\tstopped\t-',
    ]);
  });

  it('ignores colour codes when aligning', () => {
    const style = createStyle(true);
    const lines = renderTable(
      ['a', 'b'],
      [
        [style.green('x'), 'y'],
        ['long', 'z'],
      ],
      { tty: true, style },
    );
    expect(lines[1]).toBe(`${style.green('x')}      y`);
  });
});

describe('Output', () => {
  it('prints exactly one JSON document in JSON mode and no human text', () => {
    const { out, text } = capture({ json: true, tty: false, color: false });
    out.print('human');
    out.note('note');
    out.result({ a: 1 }, () => out.print('human result'));
    expect(JSON.parse(text.out)).toEqual({ a: 1 });
    expect(text.err).toBe('');
  });

  it('uses no colour unless asked', () => {
    const { out, text } = capture({ json: false, tty: true, color: false });
    out.print(out.ok('done'));
    // biome-ignore lint/suspicious/noControlCharactersInRegex: checks for ANSI escapes
    expect(text.out).not.toMatch(/\x1b\[/);
    const colored = capture({ json: false, tty: true, color: true });
    colored.out.print(colored.out.ok('done'));
    expect(colored.text.out).toContain('\x1b[32m');
  });

  it('prints progress as plain lines with timings when not on a terminal', () => {
    const { out, text } = capture({ json: false, tty: false, color: false });
    const progress = out.progress();
    progress({ type: 'step', vm: 'web', op: 'create', step: 'ip', phase: 'start' });
    progress({ type: 'step', vm: 'web', op: 'create', step: 'ip', phase: 'done', ms: 1.5 });
    progress({ type: 'step', vm: 'web', op: 'create', step: 'vmm', phase: 'failed', ms: 20, error: 'boom' });
    progress({ type: 'step', vm: 'web', op: 'create', step: 'ip', phase: 'undone', ms: 3 });
    expect(text.err.split('\n')).toEqual([
      'create web: ip done (1.5 ms)',
      'create web: vmm failed (20 ms): boom',
      'create web: ip undone (3.0 ms)',
      '',
    ]);
    expect(text.out).toBe('');
  });

  it('rewrites the progress line in place on a terminal', () => {
    const { out, text } = capture({ json: false, tty: true, color: false });
    const progress = out.progress();
    progress({ type: 'step', vm: 'web', op: 'create', step: 'ip', phase: 'start' });
    progress({ type: 'step', vm: 'web', op: 'create', step: 'ip', phase: 'done', ms: 12 });
    const [started, finished] = text.err.split('\r');
    expect(started).toBe(`  … ${'web ip'.padEnd(28)}`);
    expect(finished).toBe(`\x1b[2K  ✓ ${'web ip'.padEnd(28)} ${'12 ms'.padStart(9)}\n`);
  });

  it('reports errors on stderr, as JSON in JSON mode', () => {
    const report = {
      source: 'CliError',
      code: 'USAGE',
      message: 'bad',
      field: null,
      hint: 'fix it',
      exitCode: 2 as const,
    };
    const human = capture({ json: false, tty: false, color: false });
    human.out.error(report);
    expect(human.text.err).toBe('myhv: error: bad\n  hint: fix it\n');
    const json = capture({ json: true, tty: false, color: false });
    json.out.error(report);
    expect(JSON.parse(json.text.err)).toEqual({ error: report });
    expect(json.text.out).toBe('');
  });
});

describe('formatting', () => {
  it('formats durations, sizes and forwards', () => {
    expect(formatDuration(1.234)).toBe('1.2 ms');
    expect(formatDuration(42.4)).toBe('42 ms');
    expect(formatDuration(1500)).toBe('1.50 s');
    expect(formatDuration(125_000)).toBe('2 min 5 s');
    expect(formatMemory(512 * 1024 * 1024)).toBe('512M');
    expect(formatMemory(2 * 1024 * 1024 * 1024)).toBe('2G');
    expect(formatForward({ protocol: 'tcp', hostPort: 8080, guestIp: '10.62.0.2', guestPort: 80 })).toBe(
      'tcp/8080→10.62.0.2:80',
    );
    expect(formatForward({ protocol: 'udp', hostIp: '127.0.0.1', hostPort: 53, guestPort: 53 })).toBe(
      'udp/127.0.0.1:53→53',
    );
  });
});
