import { describe, expect, it } from 'vitest';
import { abortError, invalidArgument, StorageError, storageErrorCodes, throwIfAborted } from './errors.js';

describe('StorageError', () => {
  it('carries a stable code, details and cause', () => {
    const cause = new Error('inner');
    const error = new StorageError('START_FAILED', 'failed', {
      cause,
      details: { command: ['virtiofsd', '--socket-path=/x'], exitCode: 1, stderr: 'boom\n' },
    });
    expect(error.code).toBe('START_FAILED');
    expect(error.cause).toBe(cause);
    expect(error.name).toBe('StorageError');
    expect(error.longMessage).toBe('failed\ncommand: virtiofsd --socket-path=/x\nexit code: 1\nstderr: boom');
    expect(storageErrorCodes).toContain(error.code);
  });

  it('isInstance recognises errors from another copy of the package by their marker', () => {
    const foreign = new Error('x');
    Object.defineProperty(foreign, Symbol.for('@my-hypervisor/storage/StorageError'), {
      value: true,
    });
    expect(StorageError.isInstance(foreign)).toBe(true);
    expect(StorageError.isInstance(new Error('x'))).toBe(false);
    expect(StorageError.isInstance(null)).toBe(false);
    expect(StorageError.isInstance(new StorageError('NOT_FOUND', 'gone'))).toBe(true);
  });

  it('invalidArgument names the field', () => {
    const error = invalidArgument('tag', 'too long');
    expect(error.code).toBe('INVALID_ARGUMENT');
    expect(error.details.field).toBe('tag');
  });

  it('maps an aborted signal to ABORTED and a timeout to TIMEOUT, keeping the reason as cause', async () => {
    const controller = new AbortController();
    controller.abort();
    expect(abortError(controller.signal).code).toBe('ABORTED');
    expect(abortError(controller.signal).cause).toBe(controller.signal.reason);
    const timeout = AbortSignal.timeout(1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(abortError(timeout).code).toBe('TIMEOUT');
    expect(() => throwIfAborted(controller.signal)).toThrow(StorageError);
    expect(() => throwIfAborted(undefined)).not.toThrow();
  });
});
