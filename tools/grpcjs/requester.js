// A Routr-like Requester on @grpc/grpc-js, the gRPC server of Routr's own Requester
// (Node.js), for the registry's interoperability test (services/registry/internal/
// upstream/grpcjs_test.go). It serves fonoster.routr.requester.v2beta1.Requester from the
// repository's proto files and answers by the request's target:
//   "error"  INVALID_ARGUMENT with a message that needs percent-encoding
//   "hang"   no answer until the client cancels (the call's deadline)
//   "big"    a 200 OK whose reason phrase is 300,000 bytes (flow control)
//   other    a 200 OK whose reason phrase is the request's Call-ID
// It prints "listening <port>" once it listens on 127.0.0.1 (port 0: any), and
// "cancelled <n>" each time a hanging call is cancelled by the client.
"use strict";
const path = require("path");
const grpc = require("@grpc/grpc-js");
const loader = require("@grpc/proto-loader");

const root = path.join(__dirname, "..", "..", "proto");
const def = loader.loadSync("fonoster/routr/requester/v2beta1/requester.proto", {
  includeDirs: [root], keepCase: false, enums: String, defaults: false,
});
const pkg = grpc.loadPackageDefinition(def).fonoster.routr.requester.v2beta1;

let cancelled = 0;
function sendMessage(call, cb) {
  const target = call.request.target;
  if (target === "error") {
    cb({ code: grpc.status.INVALID_ARGUMENT, details: "bad target: 100% wrong, ünïcode" });
    return;
  }
  if (target === "hang") {
    call.on("cancelled", () => { cancelled++; console.log("cancelled " + cancelled); });
    return;
  }
  const msg = call.request.message || {};
  const reason = target === "big" ? "x".repeat(300000) : ((msg.callId || {}).callId || "");
  cb(null, { message: { responseType: "OK", reasonPhrase: reason } });
}

const server = new grpc.Server();
server.addService(pkg.Requester.service, { sendMessage });
server.bindAsync("127.0.0.1:" + (process.argv[2] || "0"), grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) { console.error(err); process.exit(1); }
  console.log("listening " + port);
});
