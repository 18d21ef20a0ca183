// tests/targets/hot.js -- a JIT target: hoHotLoop spends its time in Math.sin, compiled by
// V8's optimizing tier. Prints "ready PID" once it has run long enough to be optimized.
// With "churn" it also keeps compiling small fresh functions, as a server does, so that a
// jitdump file, which V8 writes through a stdio buffer, keeps being written out.
'use strict';

const churn = process.argv.includes('churn');
const limit = Date.now() + 300 * 1000;  // never outlives a test that forgot it

function hoHotLoop(n) {
  let s = 0;
  for (let i = 0; i < n; i++)
    s += Math.sin(i);
  return s;
}

let fresh = 0;
function hoChurn(n) {
  for (let j = 0; j < n; j++)
    new Function('x', 'return x + ' + (fresh++))(j);
}

const start = Date.now();
let total = 0, ready = false, last = start;
while (Date.now() < limit) {
  total += hoHotLoop(100000);
  if (!ready && Date.now() - start > 500) {
    console.log(`ready ${process.pid}`);
    ready = true;
  }
  if (churn && Date.now() - last > 100) {
    hoChurn(200);
    last = Date.now();
  }
}
console.log(total > 0 ? 'done' : 'done.');
