import { followFile, isProcessAlive } from '@my-hypervisor/host-utils';
import type { EventJournal } from './event-journal.js';
import { loadChvClient } from './vmm.js';

// The VMM's own events (`--event-monitor path=<runDir>/vmm-events`) reach the per-host journal through the VM's
// serial relay, the one process that lives exactly as long as the VMM: it follows the file and appends each event.

/** The event-monitor file of a VM's VMM, in its run directory (removed with it when the VM stops). */
export const VMM_EVENTS_FILE = 'vmm-events';

/** What the relay needs to copy a VMM's events into the journal. */
export interface VmmEventsForward {
  /** The VMM's event-monitor file. */
  readonly file: string;
  readonly journal: EventJournal;
  /** The VM's name, as the journal's events carry it. */
  readonly vm: string;
  /** Settles when the VMM is done writing: one last read, then the copy ends. */
  readonly until: Promise<unknown>;
  /** Ends the copy after one last read (the relay was told to stop). */
  readonly signal?: AbortSignal;
}

/**
 * Copies the VMM's events into the journal as it writes them, until `until` settles or `signal` aborts (each after
 * a last read, so the VMM's final `shutdown` is kept). Resolves with how many it copied; text that is not an event
 * is skipped, as the parser does.
 */
export async function forwardVmmEvents(options: VmmEventsForward): Promise<number> {
  const { parseEventStream } = await loadChvClient();
  const feed = parseEventStream(
    followFile(options.file, { until: options.until, ...(options.signal ? { signal: options.signal } : {}) }),
  );
  let copied = 0;
  for await (const event of feed) {
    const properties =
      event.properties && Object.keys(event.properties).length > 0 ? event.properties : undefined;
    options.journal.append({
      type: 'vmm',
      vm: options.vm,
      source: event.source,
      event: event.event,
      ...(properties ? { properties } : {}),
    });
    copied++;
  }
  return copied;
}

/** Resolves once the process is gone, or after `timeoutMs` (its last events are read either way). */
export async function processGone(
  pid: number,
  startTime: number | undefined,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (isProcessAlive(pid, startTime) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
