// Builds the dashboard's assets into internal/web/assets (committed, so
// that `go run` needs no npm): app.js (ECharts, topojson-client, the
// world-atlas 110m countries, the ISO 3166 code table and src/app.js),
// app.css, and the third-party licences.
import { build } from 'esbuild';
import { copyFileSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';

const out = '../internal/web/assets';
mkdirSync(out, { recursive: true });

await build({
  entryPoints: ['src/app.js'],
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['es2020'],
  legalComments: 'none',
  outfile: `${out}/app.js`,
  logLevel: 'info',
});
copyFileSync('src/app.css', `${out}/app.css`);
copyFileSync('src/index.html', `${out}/index.html`);
copyFileSync('src/login.html', `${out}/login.html`);

const pkgs = [
  ['echarts', 'LICENSE'], ['echarts', 'NOTICE'], ['zrender', 'LICENSE'], ['tslib', 'LICENSE.txt'],
  ['topojson-client', 'LICENSE'], ['world-atlas', 'LICENSE'], ['i18n-iso-countries', 'LICENSE'],
];
let text = 'Third-party software bundled in app.js, with its licence.\n' +
  'The country shapes are Natural Earth data (public domain) as packaged by world-atlas.\n';
for (const [name, file] of pkgs) {
  const version = JSON.parse(readFileSync(`node_modules/${name}/package.json`, 'utf8')).version;
  text += `\n==== ${name} ${version}: ${file} ====\n\n` + readFileSync(`node_modules/${name}/${file}`, 'utf8');
}
writeFileSync(`${out}/THIRD-PARTY-LICENSES.txt`, text);
