// Package grpcserve holds what the test tools' gRPC servers and commands share: Group,
// the serve-many, stop-all lifecycle of a fake server, and Main, ParseFlags and
// ServeUntil, the skeleton of a command that serves until SIGTERM or SIGINT.
//
// Package grpcservetest runs such commands from their tests.
package grpcserve
