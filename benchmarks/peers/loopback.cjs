// Preloaded into Portkey's gateway (node --require): it listens on every interface and has no
// option to choose one, so bind each server that names only a port to loopback instead.
const net = require("net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === "number" && typeof args[1] !== "string") args.splice(1, 0, "127.0.0.1");
  return listen.apply(this, args);
};
