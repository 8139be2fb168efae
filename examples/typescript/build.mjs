// Bundles src/ into one ES module for j2w; the Spin plugin leaves the WIT imports to the host.
import { build } from 'esbuild';
import { SpinEsbuildPlugin } from '@spinframework/build-tools/plugins/esbuild/index.js';

await build({
  entryPoints: ['./src/index.ts'],
  outfile: './build/bundle.js',
  bundle: true,
  format: 'esm',
  platform: 'browser',
  logLevel: 'warning',
  plugins: [await SpinEsbuildPlugin()],
});
