import { describe, expect, it } from 'vitest';
import { errorGeneration, parseServerVersion } from './server-version.js';

describe('parseServerVersion', () => {
  it('parses version, falls back to build_version, and never throws', () => {
    expect(parseServerVersion({ version: '46.0.0' })).toEqual({ major: 46, minor: 0, raw: '46.0.0' });
    expect(parseServerVersion({ version: 'v53.1' })).toEqual({ major: 53, minor: 1, raw: 'v53.1' });
    expect(parseServerVersion({ version: 'dev', build_version: 'v50.2-12-gabcdef' })).toEqual({
      major: 50,
      minor: 2,
      raw: 'v50.2-12-gabcdef',
    });
    expect(parseServerVersion({ version: 'dev', build_version: null })).toEqual({
      major: 0,
      minor: 0,
      raw: 'dev',
    });
  });

  it('maps releases to their error generation', () => {
    expect(errorGeneration({ major: 46, minor: 0, raw: '' })).toBe('plain-text');
    expect(errorGeneration({ major: 47, minor: 0, raw: '' })).toBe('json-500');
    expect(errorGeneration({ major: 52, minor: 9, raw: '' })).toBe('json-500');
    expect(errorGeneration({ major: 53, minor: 0, raw: '' })).toBe('json-status');
  });
});
