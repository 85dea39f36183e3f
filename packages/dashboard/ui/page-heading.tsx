import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';

/**
 * The page's `<h1>`: it names the document and takes the focus when the page opens, so keyboard and screen
 * reader users start at the new page's top after a hash navigation.
 */
export function PageHeading({ title, children }: { title: string; children?: ComponentChildren }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${title} — myhv`;
  }, [title]);
  useEffect(() => {
    ref.current?.focus({ preventScroll: true });
  }, []);
  return (
    <h1 id="page-title" ref={ref} tabIndex={-1}>
      {children ?? title}
    </h1>
  );
}
