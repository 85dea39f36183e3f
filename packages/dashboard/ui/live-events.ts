import { getSession, isLoggedOut } from './api';
import type { JournalEvent } from './types';

export interface LiveEventHandlers {
  /** Each journal event, as the server sends it. */
  readonly onEvent: (event: JournalEvent) => void;
  /** The stream (re)opened: events may have been missed meanwhile, so refetch what is shown. */
  readonly onOpen?: () => void;
  /** Whether the stream is open now. */
  readonly onLive?: (live: boolean) => void;
}

const RETRY_MS = [1000, 2000, 5000, 10_000];

/**
 * Follows `GET /events` (`?vm=NAME` for one VM). EventSource reconnects by itself after a dropped connection
 * (sending Last-Event-ID); when the server refuses outright (a 401, a 5xx) it gives up, so this asks `/session`
 * (which flips the page to the login hint on 401) and otherwise opens a new one after a pause. Returns the stopper.
 */
export function followEvents(vm: string | undefined, handlers: LiveEventHandlers): () => void {
  const url = vm === undefined ? '/events' : `/events?vm=${encodeURIComponent(vm)}`;
  let source: EventSource | undefined;
  let retry: ReturnType<typeof setTimeout> | undefined;
  let failures = 0;
  let stopped = false;

  const onJournal = (message: MessageEvent<string>) => {
    let event: JournalEvent;
    try {
      event = JSON.parse(message.data) as JournalEvent;
    } catch {
      return;
    }
    handlers.onEvent(event);
  };

  const open = () => {
    retry = undefined;
    const current = new EventSource(url);
    source = current;
    current.addEventListener('journal', onJournal);
    current.onopen = () => {
      failures = 0;
      handlers.onLive?.(true);
      handlers.onOpen?.();
    };
    current.onerror = () => {
      handlers.onLive?.(false);
      if (current.readyState !== EventSource.CLOSED || stopped) return;
      current.close();
      const delay = RETRY_MS[Math.min(failures++, RETRY_MS.length - 1)]!;
      getSession(true)
        .catch(() => undefined)
        .finally(() => {
          if (!stopped && !isLoggedOut()) retry = setTimeout(open, delay);
        });
    };
  };

  open();
  return () => {
    stopped = true;
    if (retry !== undefined) clearTimeout(retry);
    source?.close();
  };
}
