#!/usr/bin/env node
// The workspace's entry for `npx portcullis`: the same launcher as the package's bin.
await import('../../../bin/portcullis.js');
