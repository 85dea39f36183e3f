import { useEffect, useState } from 'preact/hooks';
import { errorText, RpcError, rpc } from './api';
import { formatBytes, formatRate } from './format';
import { usePageVisible, usePolling } from './page-visible';
import { Sparkline } from './sparkline';
import type { VmStats } from './types';

const POLL_MS = 2000;
/** Samples kept: a minute of rates at 2 s. */
const KEEP = 31;
/** The byte counters shown as rates, in this order. */
const RATE_COUNTERS = ['rx_bytes', 'tx_bytes', 'read_bytes', 'write_bytes'] as const;
const COUNTER_LABELS: Record<(typeof RATE_COUNTERS)[number], string> = {
  rx_bytes: 'received',
  tx_bytes: 'sent',
  read_bytes: 'read',
  write_bytes: 'written',
};

interface Sample {
  readonly ms: number;
  readonly stats: VmStats;
}

/** Per-second rates between consecutive samples of one number (a counter that went back counts 0). */
function rates(samples: readonly Sample[], value: (stats: VmStats) => number | undefined): number[] {
  const out: number[] = [];
  for (let i = 1; i < samples.length; i++) {
    const before = value(samples[i - 1]!.stats);
    const after = value(samples[i]!.stats);
    const seconds = (samples[i]!.ms - samples[i - 1]!.ms) / 1000;
    if (before === undefined || after === undefined || seconds <= 0) continue;
    out.push(Math.max(0, after - before) / seconds);
  }
  return out;
}

function sampleTime(stats: VmStats): number {
  const at = Date.parse(stats.at);
  return Number.isNaN(at) ? Date.now() : at;
}

/** `vm.stats` every 2 s while the VM runs and the page is visible: VMM CPU and memory, device byte rates. */
export function Counters({ name, running }: { name: string; running: boolean }) {
  const visible = usePageVisible();
  const [samples, setSamples] = useState<readonly Sample[]>([]);
  const [error, setError] = useState<string>();

  // A new VMM counts from zero again: rates only between samples of one run.
  useEffect(() => {
    if (!running) setSamples([]);
  }, [running]);

  usePolling(
    async (signal) => {
      try {
        const stats = await rpc('vm.stats', { name }, { signal });
        setSamples((prev) => [...prev, { ms: sampleTime(stats), stats }].slice(-KEEP));
        setError(undefined);
      } catch (err) {
        if (signal.aborted) return;
        // WRONG_STATE: it stopped between the event and the poll; the status change will stop the polling.
        if (err instanceof RpcError && err.code === 'WRONG_STATE') return;
        setError(errorText(err));
      }
    },
    POLL_MS,
    running && visible,
    [name],
  );

  if (!running) return <p class="muted">Counters are shown while the VM runs.</p>;
  const latest = samples[samples.length - 1]?.stats;
  if (!latest) return <p class="muted">{error ?? 'Reading counters…'}</p>;

  const cpu = rates(samples, (s) => s.vmm.cpuSeconds).map((r) => r * 100);
  const rows = [];
  for (const [device, counters] of Object.entries(latest.counters).sort(([a], [b]) => a.localeCompare(b))) {
    for (const counter of RATE_COUNTERS) {
      const total = counters[counter];
      if (total === undefined) continue;
      const series = rates(samples, (s) => s.counters[device]?.[counter]);
      const now = series[series.length - 1];
      const label = `${device} ${COUNTER_LABELS[counter]}`;
      rows.push(
        <tr key={`${device}/${counter}`} data-device={device} data-counter={counter}>
          <th scope="row">{label}</th>
          <td class="num">{now === undefined ? '—' : formatRate(now)}</td>
          <td>
            <Sparkline values={series} label={`${label} per second, last minute`} />
          </td>
          <td class="num">{formatBytes(total)}</td>
        </tr>,
      );
    }
  }
  const cpuNow = cpu[cpu.length - 1];
  return (
    <>
      {error && <p class="error">Counters: {error}</p>}
      <table class="counters" aria-label="Counters">
        <thead>
          <tr>
            <th scope="col">What</th>
            <th scope="col" class="num">
              Now
            </th>
            <th scope="col">Last minute</th>
            <th scope="col" class="num">
              Total
            </th>
          </tr>
        </thead>
        <tbody>
          <tr data-counter="vmm-cpu">
            <th scope="row">VMM CPU</th>
            <td class="num">{cpuNow === undefined ? '—' : `${cpuNow.toFixed(1)} %`}</td>
            <td>
              <Sparkline values={cpu} floor={5} label="VMM CPU percent, last minute" />
            </td>
            <td class="num">{latest.vmm.cpuSeconds.toFixed(1)} s</td>
          </tr>
          <tr data-counter="vmm-rss">
            <th scope="row">VMM memory (RSS)</th>
            <td class="num">{formatBytes(latest.vmm.rssBytes)}</td>
            <td />
            <td class="num">{latest.vmm.threads} threads</td>
          </tr>
          {rows}
        </tbody>
      </table>
    </>
  );
}
