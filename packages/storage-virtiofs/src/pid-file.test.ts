import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parsePidFile, readPidFile, writePidFile } from './pid-file.js';

const made: string[] = [];
async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}
afterAll(async () => {
  await Promise.all(made.map((dir) => rm(dir, { recursive: true, force: true })));
});

describe('pid files', () => {
  it('hold the pid on line 1 and the record on line 2, mode 0600', async () => {
    const path = join(await tempDir('myhv-pid-'), 'a.pid');
    await writePidFile(path, 1234, { id: 'a' });
    expect((await readFile(path, 'utf8')).split('\n')[0]).toBe('1234');
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readPidFile(path)).toEqual({ pid: 1234, record: { id: 'a' } });
    expect(await readPidFile(`${path}.missing`)).toBeUndefined();
  });

  it('tolerate a plain pid file and garbage', () => {
    expect(parsePidFile('77\n')).toEqual({ pid: 77 });
    expect(parsePidFile('x\n{bad json')).toEqual({});
    expect(parsePidFile('0\n')).toEqual({});
  });
});
