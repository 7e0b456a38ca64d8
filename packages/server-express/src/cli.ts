#!/usr/bin/env node
console.log('sharedllm: not built yet')
