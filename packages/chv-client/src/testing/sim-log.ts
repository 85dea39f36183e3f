import fs from 'node:fs';

type Level = 'ERROR' | 'WARN' | 'INFO' | 'DEBUG';
const rank: Record<Level, number> = { ERROR: 0, WARN: 0, INFO: 1, DEBUG: 2 };

/**
 * Log lines in Cloud Hypervisor's layout (`cloud-hypervisor: 5.314915ms: <thread> LEVEL:file -- message`),
 * to `--log-file` or stderr. `-v` adds info, `-vv` debug; warnings and errors always show.
 */
export class SimLog {
  #fd: number | undefined;
  readonly #verbosity: number;
  readonly #start = process.hrtime.bigint();

  constructor(file: string | undefined, verbosity: number, toStderr: boolean) {
    this.#verbosity = verbosity;
    this.#fd = file ? fs.openSync(file, 'a') : toStderr ? 2 : undefined;
  }

  error(message: string): void {
    this.#write('ERROR', message);
  }

  warn(message: string): void {
    this.#write('WARN', message);
  }

  info(message: string): void {
    this.#write('INFO', message);
  }

  debug(message: string): void {
    this.#write('DEBUG', message);
  }

  close(): void {
    if (this.#fd !== undefined && this.#fd !== 2) fs.closeSync(this.#fd);
    this.#fd = undefined;
  }

  #write(level: Level, message: string) {
    if (this.#fd === undefined || rank[level] > this.#verbosity) return;
    const ms = Number(process.hrtime.bigint() - this.#start) / 1e6;
    try {
      // Synchronous on purpose: the last lines before an exit are the ones a supervisor shows.
      fs.writeSync(
        this.#fd,
        `cloud-hypervisor: ${ms.toFixed(6)}ms: <vmm> ${level}:simulator -- ${message}\n`,
      );
    } catch {
      // A log that cannot be written is not worth failing a request over.
    }
  }
}
