import './styles.css';
import { type ComponentType, render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { errorText, getSession, isLoggedOut, onLoggedOut } from './api';
import { CreateForm } from './create-form';
import { PageHeading } from './page-heading';
import { href, type Route, useRoute } from './router';
import type { Session } from './types';
import { VmDetail } from './vm-detail';
import { VmList } from './vm-list';

/** Adds a stylesheet link (CSP: style-src 'self' allows it) and resolves once it applies. */
function loadStylesheet(url: string): Promise<void> {
  const existing = document.querySelector<HTMLLinkElement>(`link[rel="stylesheet"][href="${url}"]`);
  if (existing) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const link = document.createElement('link');
    link.rel = 'stylesheet';
    link.href = url;
    link.onload = () => resolve();
    link.onerror = () => {
      link.remove();
      reject(new Error(`could not load ${url}`));
    };
    document.head.append(link);
  });
}

type ConsoleModule = { ConsoleView: ComponentType<{ name: string }> };
let consoleModule: Promise<ConsoleModule> | undefined;

/** xterm and its stylesheet, fetched in parallel the first time a console opens: the other pages never load them. */
function loadConsole(): Promise<ConsoleModule> {
  consoleModule ??= Promise.all([import('./console-view'), loadStylesheet(__CONSOLE_CSS__)]).then(
    ([module]) => module,
    (error: unknown) => {
      consoleModule = undefined;
      throw error;
    },
  );
  return consoleModule;
}

function LazyConsole({ name }: { name: string }) {
  const [view, setView] = useState<{ Component: ConsoleModule['ConsoleView'] }>();
  const [error, setError] = useState<string>();
  const [attempt, setAttempt] = useState(0);
  // `attempt` re-runs the import after a failure.
  useEffect(() => {
    let current = true;
    loadConsole().then(
      (module) => current && setView({ Component: module.ConsoleView }),
      (err: unknown) => current && setError(errorText(err)),
    );
    return () => {
      current = false;
    };
  }, [attempt]);
  if (view) return <view.Component name={name} />;
  return (
    <section aria-labelledby="page-title">
      <PageHeading title={`Console: ${name}`} />
      {error ? (
        <p class="error" role="alert">
          Could not load the console: {error}{' '}
          <button
            type="button"
            onClick={() => {
              setError(undefined);
              setAttempt((n) => n + 1);
            }}
          >
            Try again
          </button>
        </p>
      ) : (
        <p class="muted">Loading the console…</p>
      )}
    </section>
  );
}

function Page({ route }: { route: Route }) {
  switch (route.page) {
    case 'list':
      return <VmList />;
    case 'create':
      return <CreateForm />;
    case 'detail':
      return <VmDetail key={route.name} name={route.name} />;
    case 'console':
      return <LazyConsole key={route.name} name={route.name} />;
    default:
      return (
        <section aria-labelledby="page-title">
          <PageHeading title="Not found" />
          <p>
            Nothing lives at <code>{route.path}</code>. <a href={href.list()}>Go to the list of VMs</a>.
          </p>
        </section>
      );
  }
}

/** The only thing shown once the server says 401, on any request. */
function LoggedOut() {
  useEffect(() => {
    document.title = 'Not logged in — myhv';
  }, []);
  return (
    <main class="logged-out">
      <h1>Not logged in</h1>
      <p>
        Not logged in. On the host, run <code>myhv dashboard url</code> and open the link it prints.
      </p>
    </main>
  );
}

function App() {
  const route = useRoute();
  const [loggedOut, setLoggedOut] = useState(isLoggedOut);
  const [session, setSession] = useState<Session>();
  const [error, setError] = useState<string>();

  useEffect(() => onLoggedOut(() => setLoggedOut(true)), []);
  useEffect(() => {
    if (session || error) return;
    getSession().then(
      // No session: logged out (also when the 401 came before the listener above was registered).
      (answer) => (answer ? setSession(answer) : setLoggedOut(true)),
      (err: unknown) => setError(errorText(err)),
    );
  }, [session, error]);

  if (loggedOut) return <LoggedOut />;
  return (
    <>
      <header class="site-header">
        <span class="brand">myhv</span>
        <nav aria-label="Main">
          <a href={href.list()} aria-current={route.page === 'list' ? 'page' : undefined}>
            Virtual machines
          </a>
        </nav>
        {session && <span class="version">myhvd {session.version}</span>}
      </header>
      <main id="main">
        {error ? (
          <section>
            <h1>The dashboard server did not answer</h1>
            <p class="error" role="alert">
              {error}
            </p>
            <button type="button" onClick={() => setError(undefined)}>
              Try again
            </button>
          </section>
        ) : session ? (
          <Page route={route} />
        ) : (
          <p class="muted">Loading…</p>
        )}
      </main>
    </>
  );
}

// Ask for the session while the first render runs; App reads the same promise.
getSession().catch(() => {});
render(<App />, document.getElementById('app')!);
