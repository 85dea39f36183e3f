import { Component } from 'preact';
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { formatBytes, formatForward, formatTime, statusText, upSince, vmForwards } from './format';
import { PageHeading } from './page-heading';
import { href } from './router';
import { StatusBadge } from './status-badge';
import type { VmInfo } from './types';
import { useVmList } from './vm-store';

/** Every row is this tall (styles.css says the same), so the rows in view follow from the scroll position. */
export const ROW_HEIGHT = 40;
/** Rows rendered beyond the view on each side: keyboard focus and fast scrolling find rows already there. */
const OVERSCAN = 10;
const COLUMNS = 7;

interface RowProps {
  readonly vm: VmInfo;
  readonly index: number;
}

/** One VM's row. Re-renders only when its VmInfo object changes (a live update replaces just that one). */
class VmRow extends Component<RowProps> {
  override shouldComponentUpdate(next: RowProps): boolean {
    return next.vm !== this.props.vm || next.index !== this.props.index;
  }

  override render({ vm, index }: RowProps) {
    const since = upSince(vm);
    const forwards = vmForwards(vm).map(formatForward).join(', ');
    return (
      <tr data-vm={vm.name} aria-rowindex={index + 2}>
        <td class="col-name">
          <a href={href.detail(vm.name)}>{vm.name}</a>
        </td>
        <td class="col-status" data-status={vm.status}>
          <StatusBadge status={vm.status} text={statusText(vm)} />
        </td>
        <td class="col-ip">{vm.ip ?? '—'}</td>
        <td class="col-cpus num">{vm.spec.cpus}</td>
        <td class="col-memory num">{formatBytes(vm.spec.memory)}</td>
        <td class="col-forwards" title={forwards || undefined}>
          {forwards || '—'}
        </td>
        <td class="col-since">{since ? <time dateTime={since}>{formatTime(since)}</time> : '—'}</td>
      </tr>
    );
  }
}

function Spacer({ rows }: { rows: number }) {
  if (rows <= 0) return null;
  return (
    // biome-ignore lint/a11y/noAriaHiddenOnFocusable: a spacer row holds the height of the rows not rendered; it is not focusable, and no row to announce
    <tr class="spacer" aria-hidden="true">
      <td colSpan={COLUMNS} style={{ height: `${rows * ROW_HEIGHT}px` }} />
    </tr>
  );
}

interface Viewport {
  readonly top: number;
  readonly height: number;
}

/** The scroll position and height of the table's scroll container, updated at most once per frame. */
function useViewport(ref: { current: HTMLDivElement | null }): [Viewport, () => void] {
  const [viewport, setViewport] = useState<Viewport>({ top: 0, height: 800 });
  const frame = useRef(0);
  const measure = useCallback(() => {
    if (frame.current) return;
    frame.current = requestAnimationFrame(() => {
      frame.current = 0;
      const element = ref.current;
      if (!element) return;
      const next = { top: element.scrollTop, height: element.clientHeight };
      setViewport((prev) => {
        // Re-render only when the first or last row in view changes.
        const same =
          Math.floor(prev.top / ROW_HEIGHT) === Math.floor(next.top / ROW_HEIGHT) &&
          Math.ceil((prev.top + prev.height) / ROW_HEIGHT) ===
            Math.ceil((next.top + next.height) / ROW_HEIGHT);
        return same ? prev : next;
      });
    });
  }, [ref]);
  useEffect(() => {
    const element = ref.current;
    if (!element) return;
    measure();
    const observer = new ResizeObserver(measure);
    observer.observe(element);
    return () => {
      observer.disconnect();
      cancelAnimationFrame(frame.current);
      frame.current = 0;
    };
  }, [ref, measure]);
  return [viewport, measure];
}

export function VmList() {
  const { vms, loaded, error, live } = useVmList();
  const [filter, setFilter] = useState('');
  const scroller = useRef<HTMLDivElement>(null);
  const [viewport, onScroll] = useViewport(scroller);

  const needle = filter.trim().toLowerCase();
  const shown = useMemo(
    () => (needle ? vms.filter((vm) => vm.name.toLowerCase().includes(needle)) : vms),
    [vms, needle],
  );

  // A shorter list (a filter typed) may leave the scroll position past its end.
  useEffect(() => {
    const element = scroller.current;
    if (element && element.scrollTop > shown.length * ROW_HEIGHT) element.scrollTop = 0;
  }, [shown.length]);

  const first = Math.max(0, Math.floor(viewport.top / ROW_HEIGHT) - OVERSCAN);
  const last = Math.min(shown.length, Math.ceil((viewport.top + viewport.height) / ROW_HEIGHT) + OVERSCAN);
  const rows = [];
  for (let i = first; i < last; i++) {
    const vm = shown[i]!;
    rows.push(<VmRow key={vm.name} vm={vm} index={i} />);
  }

  const empty = loaded && !error && vms.length === 0;
  return (
    <section class="list-page" aria-labelledby="page-title">
      <div class="page-head">
        <PageHeading title="Virtual machines" />
        <a href={href.create()} class="button primary">
          Create VM
        </a>
      </div>
      <div class="toolbar">
        <label class="filter">
          <span>Filter by name</span>
          <input
            type="search"
            value={filter}
            onInput={(event) => setFilter(event.currentTarget.value)}
            autocomplete="off"
            spellcheck={false}
          />
        </label>
        <p class="list-summary" role="status">
          {!loaded
            ? 'Loading…'
            : needle
              ? `${shown.length} of ${vms.length} VMs`
              : `${vms.length} VM${vms.length === 1 ? '' : 's'}`}
          <span class={live ? 'live on' : 'live'}>{live ? ' · live' : ' · not live, reconnecting…'}</span>
        </p>
      </div>
      {error && (
        <p class="error" role="alert">
          Could not load the VMs: {error}
        </p>
      )}
      {empty ? (
        <div class="empty-state">
          <p>No virtual machines yet.</p>
          <p>
            <a href={href.create()}>Create your first VM</a>, or run <code>myhv vm create</code> on the host.
          </p>
        </div>
      ) : (
        <div class="table-scroll" ref={scroller} onScroll={onScroll}>
          <table class="vm-table" aria-label="Virtual machines" aria-rowcount={shown.length + 1}>
            <colgroup>
              <col class="col-name" />
              <col class="col-status" />
              <col class="col-ip" />
              <col class="col-cpus" />
              <col class="col-memory" />
              <col class="col-forwards" />
              <col class="col-since" />
            </colgroup>
            <thead>
              <tr aria-rowindex={1}>
                <th scope="col" class="col-name">
                  Name
                </th>
                <th scope="col" class="col-status">
                  Status
                </th>
                <th scope="col" class="col-ip">
                  IP
                </th>
                <th scope="col" class="col-cpus num">
                  vCPUs
                </th>
                <th scope="col" class="col-memory num">
                  Memory
                </th>
                <th scope="col" class="col-forwards">
                  Forwards
                </th>
                <th scope="col" class="col-since">
                  Up since
                </th>
              </tr>
            </thead>
            <tbody>
              <Spacer rows={first} />
              {rows}
              <Spacer rows={shown.length - last} />
            </tbody>
          </table>
          {loaded && shown.length === 0 && vms.length > 0 && (
            <p class="no-match">No VM name contains “{filter.trim()}”.</p>
          )}
        </div>
      )}
    </section>
  );
}
