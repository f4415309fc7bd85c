// Package web is the HTTP edge shared by every feature: problem+json answers
// (the one place where errors become status codes), JSON responses,
// middleware, client addresses and per-client rate limiting.
//
// It knows nothing of the features; the features and the app shell use it.
package web
