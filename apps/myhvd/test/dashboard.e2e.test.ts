import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { e2eSkipReason, json, myhv, Sandbox } from '../../myhv/test/myhv.js';
import { startMyhvd } from './start-myhvd.js';

const skip = e2eSkipReason();
if (skip) console.warn(`skipped: the dashboard e2e tests, because ${skip}`);

/** `myhvd --dashboard 127.0.0.1:0` (any free port) with the sandbox's settings, and the URL it serves. */
async function startWithDashboard(env: Record<string, string>, args: readonly string[] = []) {
  const daemon = await startMyhvd(env, ['--dashboard', '127.0.0.1:0', ...args]);
  if (!daemon.dashboardUrl) throw new Error(`myhvd did not say where its dashboard is:\n${daemon.stderr()}`);
  return { ...daemon, url: daemon.dashboardUrl };
}

describe.skipIf(skip !== undefined)('myhvd --dashboard', () => {
  const box = new Sandbox('myhvd-dash');

  beforeAll(() => {
    box.create();
  });
  afterAll(() => {
    box.destroy();
  });

  it('refuses bad dashboard options with exit 2 naming the flag, before it starts', async () => {
    for (const [args, field] of [
      [['--dashboard', '0.0.0.0:8780'], '--dashboard'],
      [['--dashboard', 'eighty'], '--dashboard'],
      [['--dashboard', '70000'], '--dashboard'],
      [['--dashboard-tls-cert', '/etc/hostname'], '--dashboard-tls-cert'],
      [
        [
          '--dashboard',
          '0.0.0.0:8780',
          '--dashboard-tls-cert',
          '/nope.pem',
          '--dashboard-tls-key',
          '/nope.pem',
        ],
        '--dashboard-tls-cert',
      ],
    ] as const) {
      const result = await myhv(['--json', 'daemon', 'run', ...args], box.env);
      expect(result.code, result.stderr).toBe(2);
      expect(JSON.parse(result.stderr)).toMatchObject({
        error: { code: 'INVALID_ARGUMENT', field },
      });
    }
    expect(box.processes()).toEqual([]);
  });

  it('prints a one-time login link with `myhv dashboard url`; the API refuses a request without a session', async () => {
    const noDaemon = await myhv(['--json', 'dashboard', 'url'], box.env);
    expect(noDaemon.code).toBe(1);
    expect(JSON.parse(noDaemon.stderr)).toMatchObject({ error: { code: 'DAEMON_UNAVAILABLE' } });
    const daemon = await startWithDashboard(box.env);
    try {
      expect(daemon.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const link = await myhv(['--json', 'dashboard', 'url'], box.env);
      expect(link.code, link.stderr).toBe(0);
      const { url, expiresAt } = json<{ url: string; expiresAt: string }>(link);
      expect(url.startsWith(`${daemon.url}/login?code=`)).toBe(true);
      expect(Date.parse(expiresAt)).toBeGreaterThan(Date.now());
      const plain = await myhv(['dashboard', 'url'], box.env);
      expect(plain.stdout.trim()).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/login\?code=[\w-]+$/);
      expect(plain.stderr).toMatch(/works once/);

      const refused = await fetch(`${daemon.url}/rpc`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', origin: daemon.url },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'vm.list' }),
      });
      expect(refused.status).toBe(401);
      const login = await fetch(url, { redirect: 'manual' });
      expect(login.status).toBe(303);
      expect(login.headers.get('set-cookie')).toMatch(/HttpOnly; SameSite=Strict/);
      // The page and its assets come from the bundle's own copy of the front end.
      const page = await fetch(`${daemon.url}/`);
      expect(page.status).toBe(200);
      const html = await page.text();
      const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
      expect(script).toBeDefined();
      expect((await fetch(`${daemon.url}${script}`)).status).toBe(200);
    } finally {
      daemon.child.kill('SIGTERM');
      expect(await daemon.exited).toBe(0);
    }
  });
});

const chromiumPath = process.env.MYHV_CHROMIUM ?? '/usr/bin/chromium';
const noBrowser = existsSync(chromiumPath)
  ? undefined
  : `no browser at ${chromiumPath} (scripts/setup installs Debian's chromium; MYHV_CHROMIUM names another)`;
if (!skip && noBrowser) console.warn(`skipped: the dashboard's browser tests, because ${noBrowser}`);
/** Screenshots of the pages, kept as test artifacts (small copies are committed under docs/screenshots). */
const artifacts =
  process.env.MYHV_TEST_ARTIFACTS ?? fileURLToPath(new URL('../test-artifacts/', import.meta.url));

/**
 * In the page: how many elements with their own text it checked, and those whose colour against their (first opaque)
 * background is below 4.5:1, disabled controls excepted. Text, not a function: this package is typed without the DOM.
 */
const CONTRAST_CHECK = `(() => {
  const channel = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  const luminance = (css) => {
    const [r, g, b] = css.match(/[\\d.]+/g).slice(0, 3).map(Number).map(channel);
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const background = (element) => {
    for (let e = element; e; e = e.parentElement) {
      const c = getComputedStyle(e).backgroundColor;
      if (c !== 'transparent' && !/rgba\\(.*, 0\\)$/.test(c)) return c;
    }
    return 'rgb(255, 255, 255)';
  };
  const own = (e) => [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
  const texts = [...document.querySelectorAll('main *, header *')]
    .filter((e) => own(e) && e.checkVisibility() && !e.closest(':disabled'));
  const low = texts
    .map((e) => {
      const f = luminance(getComputedStyle(e).color);
      const b = luminance(background(e));
      return { text: e.textContent.trim().slice(0, 40), ratio: (Math.max(f, b) + 0.05) / (Math.min(f, b) + 0.05) };
    })
    .filter((r) => r.ratio < 4.5);
  return { checked: texts.length, low };
})()`;

describe.skipIf(skip !== undefined || noBrowser !== undefined)(
  'the dashboard in a real browser (chromium)',
  () => {
    const box = new Sandbox('myhvd-browser');
    let browser: Browser;

    beforeAll(async () => {
      box.create();
      mkdirSync(artifacts, { recursive: true });
      browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
    });
    afterAll(async () => {
      await browser?.close();
      box.destroy();
    });

    it('log in with the link, create through the form, follow status live, console, stop and delete', async () => {
      const daemon = await startWithDashboard(box.env);
      try {
        const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
        const page = await context.newPage();
        const problems: string[] = [];
        page.on('pageerror', (error) => problems.push(error.message));
        page.on('console', (message) => {
          if (message.type() === 'error' || /Content Security Policy/i.test(message.text())) {
            problems.push(message.text());
          }
        });
        // A VM made on the host before the browser comes.
        const made = await myhv(['vm', 'create', 'db', '--kernel', box.kernel, '--memory', '64M'], box.env);
        expect(made.code, made.stderr).toBe(0);

        const link = json<{ url: string }>(await myhv(['--json', 'dashboard', 'url'], box.env)).url;
        await page.goto(link);
        expect(new URL(page.url()).search).toBe(''); // the code left the address bar
        const dbStatus = page.locator('tr[data-vm="db"] td.col-status');
        await expect.poll(() => dbStatus.getAttribute('data-status')).toBe('running');
        expect(await page.locator('tr[data-vm="db"] td.col-memory').textContent()).toBe('64 MiB');

        // Create through the form: a bad value is shown at its field, and nothing is made.
        await page.getByRole('link', { name: 'Create VM' }).click();
        await page.getByLabel('Name').fill('web');
        await page.getByLabel('Memory').fill('1K');
        await page.getByLabel('Kernel', { exact: true }).fill(box.kernel);
        await page.getByRole('button', { name: 'Create', exact: true }).click();
        const memory = page.locator('#create-memory');
        await expect.poll(() => memory.getAttribute('aria-invalid')).toBe('true');
        expect(await page.locator('#create-memory-error').textContent()).toMatch(/memory|MiB|size|least/i);
        await expect.poll(() => page.evaluate('document.activeElement?.id')).toBe('create-memory');
        expect(json<{ vms: unknown[] }>(await myhv(['--json', 'vm', 'ls'], box.env)).vms).toHaveLength(1);
        await memory.fill('64M');
        await page.getByRole('button', { name: 'Create', exact: true }).click();
        await page.waitForURL(/#\/vms\/web$/);
        const heading = page.locator('.heading-status');
        await expect.poll(() => heading.getAttribute('data-status'), { timeout: 30_000 }).toBe('running');
        await page.screenshot({ path: join(artifacts, 'dashboard-detail.png') });

        // The list follows what happens elsewhere, without a reload.
        await page.getByRole('link', { name: 'Virtual machines' }).click();
        await page.evaluate('window.marker = 1');
        const stopped = await myhv(['vm', 'stop', 'db'], box.env);
        expect(stopped.code, stopped.stderr).toBe(0);
        await expect.poll(() => dbStatus.getAttribute('data-status'), { timeout: 10_000 }).toBe('stopped');
        expect(await page.evaluate('window.marker')).toBe(1);
        await page.screenshot({ path: join(artifacts, 'dashboard-list.png') });

        // The serial console: the probe guest's marker, from the relay's backlog.
        await page.goto(`${daemon.url}/#/vms/web/console`);
        const terminal = page.locator('.xterm-rows');
        await expect.poll(() => terminal.textContent(), { timeout: 15_000 }).toContain('myhv-probe: booted');
        await page.screenshot({ path: join(artifacts, 'dashboard-console.png') });
        // A second writer is refused while the browser holds the console.
        const second = await myhv(['vm', 'console', 'web'], box.env, 10_000);
        expect(second.code).not.toBe(0);
        expect(second.stderr).toMatch(/another console is attached/);

        // Stop and delete with the buttons; delete asks first.
        await page.goto(`${daemon.url}/#/vms/web`);
        await page.getByRole('button', { name: 'Stop', exact: true }).click();
        await expect.poll(() => heading.getAttribute('data-status'), { timeout: 30_000 }).toBe('stopped');
        await page.getByRole('button', { name: 'Delete', exact: true }).click();
        const dialog = page.getByRole('dialog');
        await dialog.getByRole('button', { name: 'Delete', exact: true }).click();
        await page.waitForURL(/#\/$/);
        await expect.poll(() => page.locator('tr[data-vm="web"]').count()).toBe(0);
        const left = json<{ vms: { name: string }[] }>(await myhv(['--json', 'vm', 'ls'], box.env));
        expect(left.vms.map((vm) => vm.name)).toEqual(['db']);

        // Without the CSRF token (the page's cookie alone) a change is refused; without the cookie, everything is.
        const forged = await context.request.post(`${daemon.url}/rpc`, {
          headers: { origin: daemon.url, 'content-type': 'application/json' },
          data: { jsonrpc: '2.0', id: 1, method: 'vm.delete', params: { name: 'db', force: true } },
        });
        expect(forged.status()).toBe(403);
        const stranger = await browser.newContext();
        const strangerPage = await stranger.newPage();
        await strangerPage.goto(`${daemon.url}/`);
        await strangerPage.getByRole('heading', { name: 'Not logged in' }).waitFor();
        expect((await stranger.request.get(`${daemon.url}/session`)).status()).toBe(401);
        await stranger.close();
        expect(json<{ vms: unknown[] }>(await myhv(['--json', 'vm', 'ls'], box.env)).vms).toHaveLength(1);

        // Keyboard: Tab reaches "Create VM" and Enter follows it; the first field of the form is labelled.
        await page.goto(`${daemon.url}/#/`);
        await page.locator('tr[data-vm="db"]').waitFor();
        let focused = '';
        for (let i = 0; i < 12 && focused !== 'Create VM'; i++) {
          await page.keyboard.press('Tab');
          focused = String(await page.evaluate('document.activeElement?.textContent?.trim()'));
        }
        expect(focused).toBe('Create VM');
        await page.keyboard.press('Enter');
        await page.waitForURL(/#\/create$/);
        expect(await page.getByLabel('Name').count()).toBe(1);

        // Contrast of every text the list and form show (disabled controls aside): WCAG AA, 4.5:1.
        for (const route of ['#/', '#/create']) {
          await page.goto(`${daemon.url}/${route}`);
          await page.locator('main h1').waitFor();
          const { checked, low } = (await page.evaluate(CONTRAST_CHECK)) as {
            checked: number;
            low: { text: string; ratio: number }[];
          };
          expect(checked, route).toBeGreaterThan(8);
          expect(low, route).toEqual([]);
        }

        // A narrow screen: one column, nothing wider than the screen, the list still names each VM and its status.
        await page.setViewportSize({ width: 390, height: 800 });
        await page.goto(`${daemon.url}/#/`);
        await page.locator('tr[data-vm="db"]').waitFor();
        expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
        expect(await page.locator('tr[data-vm="db"] td.col-status').isVisible()).toBe(true);
        await page.screenshot({ path: join(artifacts, 'dashboard-narrow.png') });

        expect(problems.filter((p) => !/status of 40[13]/.test(p))).toEqual([]);
        await context.close();
      } finally {
        daemon.child.kill('SIGTERM');
        expect(await daemon.exited).toBe(0);
        await myhv(['vm', 'rm', '--force', 'db'], box.env);
      }
    });
  },
);
