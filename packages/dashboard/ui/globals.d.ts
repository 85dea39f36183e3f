/** The console view's stylesheet (`/assets/console-[hash].css`), set by scripts/build-ui.mjs. */
declare const __CONSOLE_CSS__: string;
