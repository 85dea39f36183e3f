/**
 * Lets xterm 6's DOM renderer run under the page's CSP (`style-src 'self'`, no 'unsafe-inline').
 *
 * xterm writes its per-terminal rules (theme colours, cursor blink, row layout, scrollbar) into three `<style>`
 * elements it creates in `Terminal.open()`, and truecolor and selection colours into `style="…"` attributes of the
 * spans it renders. Chromium refuses both (style-src-elem, style-src-attr; even an empty `<style>` is a violation).
 * CSP does not govern the CSSOM, so while the shim is installed `document.createElement` hands xterm:
 * - for `style`: an inert `<template>` whose `textContent` goes into a constructed stylesheet adopted by the
 *   document (removed again with the element);
 * - for `span`: a span whose `setAttribute('style', …)` sets `style.cssText` instead.
 * The rules and colours are exactly xterm's; only the channel differs. Everything else is left alone. Without
 * constructable stylesheets (Safari before 16.4) the rules are dropped and console.css's static ones stand in.
 */
export function installXtermCspShim(doc: Document): () => void {
  const realCreateElement = doc.createElement;
  const sheets = new Set<CSSStyleSheet>();

  const adopt = (sheet: CSSStyleSheet) => {
    sheets.add(sheet);
    doc.adoptedStyleSheets = [...doc.adoptedStyleSheets, sheet];
  };
  const drop = (sheet: CSSStyleSheet) => {
    if (!sheets.delete(sheet)) return;
    doc.adoptedStyleSheets = doc.adoptedStyleSheets.filter((s) => s !== sheet);
  };

  const constructable = 'adoptedStyleSheets' in doc && 'replaceSync' in CSSStyleSheet.prototype;

  const styleStandIn = (): HTMLElement => {
    const element = realCreateElement.call(doc, 'template');
    const sheet = constructable ? new CSSStyleSheet() : undefined;
    let text = '';
    if (sheet) adopt(sheet);
    Object.defineProperty(element, 'textContent', {
      configurable: true,
      get: () => text,
      set: (value: string | null) => {
        text = value ?? '';
        sheet?.replaceSync(text);
      },
    });
    element.remove = () => {
      Element.prototype.remove.call(element);
      if (sheet) drop(sheet);
    };
    return element;
  };

  function setAttributeViaCssom(this: HTMLElement, name: string, value: string): void {
    if (name.toLowerCase() === 'style') this.style.cssText = value;
    else Element.prototype.setAttribute.call(this, name, value);
  }

  function createElement(this: Document, tagName: string, options?: ElementCreationOptions): HTMLElement {
    const tag = tagName.toLowerCase();
    if (tag === 'style') return styleStandIn();
    const element = realCreateElement.call(this, tagName, options);
    if (tag === 'span') element.setAttribute = setAttributeViaCssom;
    return element;
  }

  // An own property of this document only, removed again by the disposer.
  Object.defineProperty(doc, 'createElement', { configurable: true, writable: true, value: createElement });
  return () => {
    delete (doc as { createElement?: unknown }).createElement;
    for (const sheet of [...sheets]) drop(sheet);
  };
}
