import { expect } from 'vitest';
import { CliError } from '../src/errors.js';

/** The CliError `run` throws; fails the test when it throws none, or something else. */
export function refusal(run: () => unknown): CliError {
  let error: unknown;
  try {
    run();
  } catch (e) {
    error = e;
  }
  expect(CliError.isInstance(error), String(error)).toBe(true);
  return error as CliError;
}
