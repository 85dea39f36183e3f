import { useEffect, useState } from 'preact/hooks';

export type Route =
  | { readonly page: 'list' }
  | { readonly page: 'create' }
  | { readonly page: 'detail'; readonly name: string }
  | { readonly page: 'console'; readonly name: string }
  | { readonly page: 'not-found'; readonly path: string };

/** `#/`, `#/create`, `#/vms/NAME`, `#/vms/NAME/console`. */
export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '') || '/';
  if (path === '/') return { page: 'list' };
  if (path === '/create') return { page: 'create' };
  const vm = /^\/vms\/([^/]+)(\/console)?\/?$/.exec(path);
  if (vm) {
    let name: string;
    try {
      name = decodeURIComponent(vm[1]!);
    } catch {
      return { page: 'not-found', path };
    }
    return vm[2] ? { page: 'console', name } : { page: 'detail', name };
  }
  return { page: 'not-found', path };
}

export const href = {
  list: () => '#/',
  create: () => '#/create',
  detail: (name: string) => `#/vms/${encodeURIComponent(name)}`,
  console: (name: string) => `#/vms/${encodeURIComponent(name)}/console`,
};

export function navigate(to: string): void {
  window.location.hash = to.replace(/^#/, '');
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location.hash));
  useEffect(() => {
    const update = () => setRoute(parseRoute(window.location.hash));
    window.addEventListener('hashchange', update);
    return () => window.removeEventListener('hashchange', update);
  }, []);
  return route;
}
