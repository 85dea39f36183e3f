import { Terminal } from '@xterm/xterm';
import { useEffect, useRef, useState } from 'preact/hooks';
import { getSession } from './api';
import { PageHeading } from './page-heading';
import { href } from './router';
import { installXtermCspShim } from './xterm-csp';

/** What the server's close codes mean (the server's own reason text is shown beside it when it sends one). */
const CLOSE_CODES: Readonly<Record<number, string>> = {
  4401: 'Not logged in.',
  4404: 'There is no such VM.',
  4409: 'Another console is attached to this VM.',
  4412: 'The VM is not running.',
};

type Connection =
  | { readonly state: 'connecting' }
  | { readonly state: 'open' }
  | { readonly state: 'closed'; readonly message: string };

function closeMessage(event: CloseEvent): string {
  const known = CLOSE_CODES[event.code];
  const reason = event.reason.trim();
  // The server's reason may just say the same in other words ("another console is attached").
  const says = (text: string, part: string) =>
    text.toLowerCase().includes(part.toLowerCase().replace(/\.$/, ''));
  if (known && reason && !says(known, reason)) return `${known} (${reason})`;
  if (known) return known;
  if (reason) return `${reason} (code ${event.code})`;
  return event.code === 1000 ? 'The console was closed.' : `The connection was lost (code ${event.code}).`;
}

function consoleUrl(name: string): string {
  const url = new URL(`/vms/${encodeURIComponent(name)}/console`, window.location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.hash = '';
  return url.href;
}

/** The serial console of one VM: xterm.js over the dashboard's WebSocket, raw bytes both ways. */
export function ConsoleView({ name }: { name: string }) {
  const hostRef = useRef<HTMLElement>(null);
  const backRef = useRef<HTMLAnchorElement>(null);
  const termRef = useRef<Terminal | undefined>(undefined);
  const socketRef = useRef<WebSocket | undefined>(undefined);
  const [connection, setConnection] = useState<Connection>({ state: 'connecting' });
  const [attempt, setAttempt] = useState(0);

  // One terminal for the life of the view; reconnecting keeps its scrollback.
  useEffect(() => {
    const uninstallShim = installXtermCspShim(document);
    const term = new Terminal({
      cols: 80,
      rows: 24,
      cursorBlink: true,
      scrollback: 5000,
      // A bare LF from the guest starts a new line at its start, as a serial terminal set to onlcr shows it.
      convertEol: true,
      fontSize: 14,
      fontFamily:
        'ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", "DejaVu Sans Mono", monospace',
      theme: {
        background: '#16181d',
        foreground: '#e6e8eb',
        cursor: '#e6e8eb',
        selectionBackground: '#3d5a80',
      },
    });
    term.open(hostRef.current!);
    termRef.current = term;
    // Tab, Escape and the rest belong to the guest; Ctrl+] (as in virsh and telnet) leaves the terminal.
    term.attachCustomKeyEventHandler((event) => {
      if (event.type === 'keydown' && event.ctrlKey && event.key === ']') {
        event.preventDefault();
        backRef.current?.focus();
        return false;
      }
      return true;
    });
    const encoder = new TextEncoder();
    const send = (bytes: Uint8Array) => {
      const socket = socketRef.current;
      if (socket?.readyState === WebSocket.OPEN) socket.send(bytes);
    };
    const onData = term.onData((text) => send(encoder.encode(text)));
    // Mouse reports and the like: one byte per character.
    const onBinary = term.onBinary((text) => send(Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff)));
    return () => {
      onData.dispose();
      onBinary.dispose();
      term.dispose();
      termRef.current = undefined;
      uninstallShim();
    };
  }, []);

  useEffect(() => {
    const socket = new WebSocket(consoleUrl(name));
    socket.binaryType = 'arraybuffer';
    socketRef.current = socket;
    setConnection({ state: 'connecting' });
    socket.onopen = () => {
      setConnection({ state: 'open' });
      termRef.current?.focus();
    };
    socket.onmessage = (event: MessageEvent<ArrayBuffer | string>) => {
      const data = event.data;
      termRef.current?.write(typeof data === 'string' ? data : new Uint8Array(data));
    };
    socket.onclose = (event) => {
      socketRef.current = undefined;
      setConnection({ state: 'closed', message: closeMessage(event) });
      // A refused upgrade (no session) arrives as 1006 without a reason: ask /session, which flips the page.
      if (event.code === 4401 || event.code === 1006) getSession(true).catch(() => {});
    };
    return () => {
      socket.onclose = null;
      socket.onmessage = null;
      socket.close(1000, 'page left');
      if (socketRef.current === socket) socketRef.current = undefined;
    };
  }, [name, attempt]);

  return (
    <section class="console-page" aria-labelledby="page-title">
      <PageHeading title={`Console: ${name}`}>
        Console: <span class="vm-name">{name}</span>
      </PageHeading>
      <div class="toolbar">
        <a ref={backRef} href={href.detail(name)} class="button">
          Back
        </a>
        <p class="console-status" role="status" data-state={connection.state}>
          {connection.state === 'connecting' && 'Connecting…'}
          {connection.state === 'open' && "Connected — type to send to the guest's serial port"}
          {connection.state === 'closed' && `Disconnected: ${connection.message}`}
        </p>
        {connection.state === 'closed' && (
          <button type="button" onClick={() => setAttempt((n) => n + 1)}>
            Reconnect
          </button>
        )}
      </div>
      <p class="hint">
        Keys go to the guest, Tab included; press <kbd>Ctrl</kbd>+<kbd>{']'}</kbd> to move focus out of the
        terminal.
      </p>
      <section class="console-term" ref={hostRef} aria-label="Serial console" />
    </section>
  );
}
