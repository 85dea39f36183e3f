import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { errorText, RpcError, rpc } from './api';
import { Counters } from './counters';
import {
  describeEvent,
  eventKey,
  formatBytes,
  formatForward,
  formatTime,
  statusText,
  vmForwards,
} from './format';
import { followEvents } from './live-events';
import { takeNotice } from './notice';
import { PageHeading } from './page-heading';
import { usePageVisible, usePolling } from './page-visible';
import { href, navigate } from './router';
import { StatusBadge } from './status-badge';
import type { JournalEvent, VmInfo, VmSnapshot, VmStatus } from './types';

const COALESCE_MS = 75;
const EVENTS_SHOWN = 50;
const EVENTS_KEPT = 200;
const LOG_POLL_MS = 2000;
const LOG_BYTES = 64 * 1024;
/** Events coming in a burst refresh the log once. */
const LOG_DEBOUNCE_MS = 250;

type Lifecycle = 'vm.start' | 'vm.stop' | 'vm.restart' | 'vm.pause' | 'vm.resume';

const LIFECYCLE: readonly {
  label: string;
  progress: string;
  method: Lifecycle;
  when: readonly VmStatus[];
}[] = [
  { label: 'Start', progress: 'Starting…', method: 'vm.start', when: ['stopped'] },
  { label: 'Stop', progress: 'Stopping…', method: 'vm.stop', when: ['running', 'paused'] },
  { label: 'Restart', progress: 'Restarting…', method: 'vm.restart', when: ['running'] },
  { label: 'Pause', progress: 'Pausing…', method: 'vm.pause', when: ['running'] },
  { label: 'Resume', progress: 'Resuming…', method: 'vm.resume', when: ['paused'] },
];

const live = (status: VmStatus) => status === 'running' || status === 'paused';

/** Newest first, without duplicates (the journal and the stream may both carry an event), at most EVENTS_KEPT. */
function mergeEvents(current: readonly JournalEvent[], incoming: readonly JournalEvent[]): JournalEvent[] {
  const seen = new Set(current.map(eventKey));
  const added = incoming.filter((event) => {
    const key = eventKey(event);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  if (added.length === 0) return current as JournalEvent[];
  return [...added, ...current]
    .sort((a, b) => (a.time < b.time ? 1 : a.time > b.time ? -1 : 0))
    .slice(0, EVENTS_KEPT);
}

function Definition({ term, children }: { term: string; children: ComponentChildren }) {
  return (
    <>
      <dt>{term}</dt>
      <dd>{children}</dd>
    </>
  );
}

function Configuration({ vm }: { vm: VmInfo }) {
  const { spec } = vm;
  return (
    <dl class="facts">
      <Definition term="vCPUs">
        {spec.cpus}
        {spec.cpusMax !== undefined && spec.cpusMax !== spec.cpus ? ` (up to ${spec.cpusMax})` : ''}
      </Definition>
      <Definition term="Memory">{formatBytes(spec.memory)}</Definition>
      <Definition term="Kernel">
        <code>{spec.kernel}</code>
      </Definition>
      {spec.initramfs && (
        <Definition term="Initramfs">
          <code>{spec.initramfs}</code>
        </Definition>
      )}
      {spec.image && <Definition term="Image">{spec.image}</Definition>}
      <Definition term="Command line">
        <code>{spec.cmdline || '—'}</code>
      </Definition>
      <Definition term="Disks">
        {spec.disks.length === 0 ? (
          'None'
        ) : (
          <ul class="plain">
            {spec.disks.map((disk) => (
              <li key={disk.path}>
                <code>{disk.path}</code>
                {disk.readOnly ? ' (read-only)' : ''}
              </li>
            ))}
          </ul>
        )}
      </Definition>
      <Definition term="Created">
        <time dateTime={vm.createdAt}>{formatTime(vm.createdAt)}</time>
      </Definition>
      <Definition term="Changed">
        <time dateTime={vm.updatedAt}>{formatTime(vm.updatedAt)}</time>
      </Definition>
    </dl>
  );
}

function Network({ vm }: { vm: VmInfo }) {
  if (vm.spec.network?.enabled === false) return <p class="muted">No network.</p>;
  return (
    <dl class="facts">
      <Definition term="IP">{vm.ip ?? '—'}</Definition>
      {vm.ipv6 && <Definition term="IPv6">{vm.ipv6}</Definition>}
      <Definition term="MAC">{vm.mac ?? '—'}</Definition>
      <Definition term="TAP">{vm.tap ?? '—'}</Definition>
      <Definition term="Bridge">{vm.bridge ?? '—'}</Definition>
      <Definition term="Netns">{vm.netns ?? '—'}</Definition>
    </dl>
  );
}

function Snapshots(props: {
  snapshots: readonly VmSnapshot[] | undefined;
  error: string | undefined;
  disabled: boolean;
  onRestore: (snapshot: VmSnapshot) => void;
  onRemove: (snapshot: VmSnapshot) => void;
}) {
  const { snapshots, error, disabled } = props;
  if (error) return <p class="error">Snapshots: {error}</p>;
  if (!snapshots) return <p class="muted">Loading…</p>;
  if (snapshots.length === 0) return <p class="muted">No snapshots.</p>;
  return (
    <div class="table-wrap">
      <table class="snapshots" aria-label="Snapshots">
        <thead>
          <tr>
            <th scope="col">ID</th>
            <th scope="col">Taken</th>
            <th scope="col" class="num">
              Size
            </th>
            <th scope="col">
              <span class="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {snapshots.map((snapshot) => {
            const idCell = `snapshot-${snapshot.id}`;
            return (
              <tr key={snapshot.id} data-snapshot={snapshot.id}>
                <td id={idCell}>
                  <code>{snapshot.id}</code>
                </td>
                <td>
                  <time dateTime={snapshot.createdAt}>{formatTime(snapshot.createdAt, true)}</time>
                  {` (${snapshot.status})`}
                </td>
                <td class="num">{formatBytes(snapshot.sizeBytes)}</td>
                <td class="row-actions">
                  <button
                    type="button"
                    disabled={disabled}
                    aria-describedby={idCell}
                    onClick={() => props.onRestore(snapshot)}
                  >
                    Restore
                  </button>
                  <button
                    type="button"
                    disabled={disabled}
                    aria-describedby={idCell}
                    onClick={() => props.onRemove(snapshot)}
                  >
                    Remove
                  </button>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function Events({ events }: { events: readonly JournalEvent[] }) {
  if (events.length === 0) return <p class="muted">No events yet.</p>;
  return (
    <ol class="events" aria-label="Events, newest first">
      {events.slice(0, EVENTS_SHOWN).map((event) => (
        <li key={eventKey(event)} data-type={event.type}>
          <time dateTime={event.time}>{formatTime(event.time, true).slice(11)}</time>
          <span class="event-type">{event.type}</span>
          <span class="event-text">{describeEvent(event)}</span>
        </li>
      ))}
    </ol>
  );
}

/** The serial log's tail, refreshed every 2 s (while visible) and whenever `bump` changes; kept scrolled down. */
function LogTail({ name, bump }: { name: string; bump: number }) {
  const visible = usePageVisible();
  const [log, setLog] = useState<{ text: string; path: string }>();
  const [error, setError] = useState<string>();
  const pre = useRef<HTMLPreElement>(null);
  const stuck = useRef(true);

  usePolling(
    async (signal) => {
      try {
        const answer = await rpc('vm.logs', { name, log: 'serial', maxBytes: LOG_BYTES }, { signal });
        setLog((prev) => (prev?.text === answer.text && prev.path === answer.path ? prev : answer));
        setError(undefined);
      } catch (err) {
        if (!signal.aborted) setError(errorText(err));
      }
    },
    LOG_POLL_MS,
    visible,
    [name, bump],
  );

  // Follow the end unless the reader scrolled up to read.
  useLayoutEffect(() => {
    const element = pre.current;
    if (element && stuck.current) element.scrollTop = element.scrollHeight;
  }, [log]);

  return (
    <>
      {error && <p class="error">Log: {error}</p>}
      {log?.path && (
        <p class="muted small">
          <code>{log.path}</code>
        </p>
      )}
      <pre
        class="log"
        ref={pre}
        onScroll={(event) => {
          const element = event.currentTarget;
          stuck.current = element.scrollHeight - element.scrollTop - element.clientHeight < 8;
        }}
      >
        {log ? log.text || '(empty)' : 'Loading…'}
      </pre>
    </>
  );
}

export function VmDetail({ name }: { name: string }) {
  const [vm, setVm] = useState<VmInfo>();
  const [loadError, setLoadError] = useState<RpcError | Error>();
  const [deleted, setDeleted] = useState(false);
  const [busy, setBusy] = useState<string>();
  const [actionError, setActionError] = useState<string>();
  const [notice] = useState(() => takeNotice(name));
  const [events, setEvents] = useState<readonly JournalEvent[]>([]);
  const [snapshots, setSnapshots] = useState<readonly VmSnapshot[]>();
  const [snapshotError, setSnapshotError] = useState<string>();
  const [logBump, setLogBump] = useState(0);
  const dialog = useRef<HTMLDialogElement>(null);
  const refetchTimer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const logTimer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const deleting = useRef(false);

  const loadVm = useCallback(async () => {
    try {
      setVm(await rpc('vm.get', { name }));
      setLoadError(undefined);
    } catch (error) {
      if (error instanceof RpcError && error.code === 'NOT_FOUND' && deleting.current) return;
      setLoadError(error as Error);
    }
  }, [name]);

  const loadSnapshots = useCallback(async () => {
    try {
      setSnapshots(await rpc('vm.snapshot.list', { name }));
      setSnapshotError(undefined);
    } catch (error) {
      setSnapshotError(errorText(error));
    }
  }, [name]);

  const loadJournal = useCallback(async () => {
    try {
      const history = await rpc('events.journal', { vm: name, limit: EVENTS_SHOWN });
      setEvents((current) => mergeEvents(current, history));
    } catch {
      // The live events still arrive; the history is a nicety.
    }
  }, [name]);

  useEffect(() => {
    void loadVm();
    void loadSnapshots();
    void loadJournal();
    const stop = followEvents(name, {
      onOpen: () => {
        void loadVm();
        void loadJournal();
      },
      onEvent: (event) => {
        if (event.vm !== name) return;
        setEvents((current) => mergeEvents(current, [event]));
        if (logTimer.current === undefined) {
          logTimer.current = setTimeout(() => {
            logTimer.current = undefined;
            setLogBump((n) => n + 1);
          }, LOG_DEBOUNCE_MS);
        }
        if (event.type === 'status' && event.status === 'deleted') {
          if (!deleting.current) setDeleted(true);
          return;
        }
        if (event.type === 'step' && /snapshot|restore/.test(event.op) && event.phase === 'done') {
          void loadSnapshots();
        }
        if (refetchTimer.current === undefined) {
          refetchTimer.current = setTimeout(() => {
            refetchTimer.current = undefined;
            void loadVm();
          }, COALESCE_MS);
        }
      },
    });
    return () => {
      stop();
      clearTimeout(refetchTimer.current);
      clearTimeout(logTimer.current);
      refetchTimer.current = undefined;
      logTimer.current = undefined;
    };
  }, [name, loadVm, loadSnapshots, loadJournal]);

  const run = async (progress: string, action: () => Promise<void>) => {
    setBusy(progress);
    setActionError(undefined);
    try {
      await action();
    } catch (error) {
      setActionError(errorText(error));
    } finally {
      setBusy(undefined);
    }
  };

  const confirmDelete = () =>
    run('Deleting…', async () => {
      dialog.current?.close();
      deleting.current = true;
      try {
        await rpc('vm.delete', { name, ...(vm && live(vm.status) ? { force: true } : {}) });
      } catch (error) {
        deleting.current = false;
        throw error;
      }
      navigate(href.list());
    });

  if (deleted) {
    return (
      <section aria-labelledby="page-title">
        <PageHeading title={name} />
        <p role="alert">This VM has been deleted.</p>
        <p>
          <a href={href.list()}>Back to the list</a>
        </p>
      </section>
    );
  }
  if (!vm) {
    const notFound = loadError instanceof RpcError && loadError.code === 'NOT_FOUND';
    return (
      <section aria-labelledby="page-title">
        <PageHeading title={name} />
        {loadError ? (
          <p class="error" role="alert">
            {notFound ? `There is no VM named ${name}.` : `Could not load ${name}: ${errorText(loadError)}`}
          </p>
        ) : (
          <p class="muted">Loading…</p>
        )}
        <p>
          <a href={href.list()}>Back to the list</a>
        </p>
      </section>
    );
  }

  const status = vm.status;
  const disabled = busy !== undefined;
  const forwards = vmForwards(vm);
  return (
    <section class="detail-page" aria-labelledby="page-title" data-vm={vm.name}>
      <div class="page-head">
        <PageHeading title={vm.name}>
          <span class="vm-name">{vm.name}</span>
        </PageHeading>
        <span class="heading-status" data-status={status}>
          <StatusBadge status={status} text={statusText(vm)} />
        </span>
      </div>
      {vm.pending && (
        <p class="muted">
          In progress: {vm.pending.op} ({vm.pending.step}) since {formatTime(vm.pending.since, true)}
        </p>
      )}
      {vm.lastError && (
        <p class="warning">
          Last error ({vm.lastError.code}
          {vm.lastError.step ? `, ${vm.lastError.step}` : ''}): {vm.lastError.message}
        </p>
      )}
      {notice && <p class="warning">{notice}</p>}

      <div class="actions">
        {LIFECYCLE.map((action) => (
          <button
            key={action.method}
            type="button"
            disabled={disabled || !action.when.includes(status)}
            onClick={() =>
              run(action.progress, async () => {
                setVm(await rpc(action.method, { name }));
              })
            }
          >
            {action.label}
          </button>
        ))}
        <button
          type="button"
          disabled={disabled || !live(status)}
          onClick={() =>
            run('Taking a snapshot…', async () => {
              await rpc('vm.snapshot.create', { name });
              await loadSnapshots();
            })
          }
        >
          Snapshot
        </button>
        <button
          type="button"
          class="danger"
          disabled={disabled || status === 'creating' || status === 'deleting'}
          onClick={() => dialog.current?.showModal()}
        >
          Delete
        </button>
        {status === 'running' && (
          <a href={href.console(vm.name)} class="button">
            Console
          </a>
        )}
        <span class="busy" role="status">
          {busy ?? ''}
        </span>
      </div>
      <div class="alert-region" role="alert">
        {actionError && <p class="error">{actionError}</p>}
      </div>

      <dialog ref={dialog} class="confirm" aria-labelledby="delete-title" aria-describedby="delete-text">
        <h2 id="delete-title">Delete {vm.name}?</h2>
        <p id="delete-text">
          This deletes the VM and everything it owns, its snapshots included.
          {live(status) ? ' It is running: it will be stopped first.' : ''}
        </p>
        <div class="actions">
          <button type="button" class="danger" onClick={confirmDelete}>
            Delete
          </button>
          <button type="button" autofocus onClick={() => dialog.current?.close()}>
            Cancel
          </button>
        </div>
      </dialog>

      <div class="cards">
        <section class="card" aria-labelledby="h-config">
          <h2 id="h-config">Configuration</h2>
          <Configuration vm={vm} />
        </section>
        <section class="card" aria-labelledby="h-network">
          <h2 id="h-network">Network</h2>
          <Network vm={vm} />
        </section>
        <section class="card" aria-labelledby="h-shares">
          <h2 id="h-shares">Shares</h2>
          {vm.shares.length === 0 ? (
            <p class="muted">None.</p>
          ) : (
            <ul class="plain">
              {vm.shares.map((share) => (
                <li key={share.tag}>
                  <strong>{share.tag}</strong>: <code>{share.hostPath}</code>
                  {share.readOnly ? ' (read-only)' : ''}
                </li>
              ))}
            </ul>
          )}
        </section>
        <section class="card" aria-labelledby="h-forwards">
          <h2 id="h-forwards">Forwards</h2>
          {forwards.length === 0 ? (
            <p class="muted">None.</p>
          ) : (
            <ul class="plain">
              {forwards.map((forward) => (
                <li key={`${forward.protocol}/${forward.hostPort}`}>{formatForward(forward)}</li>
              ))}
            </ul>
          )}
        </section>
        <section class="card wide" aria-labelledby="h-snapshots">
          <h2 id="h-snapshots">Snapshots</h2>
          <Snapshots
            snapshots={snapshots}
            error={snapshotError}
            disabled={disabled || status === 'creating' || status === 'deleting'}
            onRestore={(snapshot) =>
              run('Restoring…', async () => {
                setVm(await rpc('vm.restore', { name, from: snapshot.id }));
              })
            }
            onRemove={(snapshot) =>
              run('Removing the snapshot…', async () => {
                await rpc('vm.snapshot.remove', { name, id: snapshot.id });
                await loadSnapshots();
              })
            }
          />
        </section>
        <section class="card wide" aria-labelledby="h-counters">
          <h2 id="h-counters">Counters</h2>
          <Counters name={vm.name} running={live(status) && vm.vmmAlive} />
        </section>
        <section class="card wide" aria-labelledby="h-events">
          <h2 id="h-events">Events</h2>
          <Events events={events} />
        </section>
        <section class="card wide" aria-labelledby="h-log">
          <h2 id="h-log">Log</h2>
          <LogTail name={vm.name} bump={logBump} />
        </section>
      </div>
    </section>
  );
}
