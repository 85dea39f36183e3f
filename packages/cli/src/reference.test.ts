import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createProgram } from './program.js';
import { renderCliReference } from './reference.js';
import { settings } from './settings.js';

const docsFile = new URL('../../../docs/cli.md', import.meta.url);

describe('docs/cli.md', () => {
  const reference = renderCliReference();

  it('is exactly what the command tree generates (run `cd packages/cli && pnpm run docs` after a change)', () => {
    expect(readFileSync(docsFile, 'utf8')).toBe(reference);
  });

  it('documents every leaf command, every option and every environment variable', () => {
    const program = createProgram(async () => {});
    const walk = (command: typeof program, prefix: string): void => {
      for (const sub of command.commands) {
        const name = `${prefix} ${sub.name()}`;
        if (sub.commands.length > 0) walk(sub, name);
        else {
          expect(reference).toContain(`### \`${name}\``);
          for (const option of sub.options) expect(reference).toContain(option.flags);
        }
      }
    };
    walk(program, 'myhv');
    for (const s of settings) {
      expect(reference).toContain(s.env);
      expect(reference).toContain(s.flag);
    }
  });
});
