// Package domain holds what Web Tracker is about: page views, the identity of
// a page (its canonical URL), visitors, and the errors that cross layers.
//
// It depends on the standard library only; every other package depends on it,
// never the other way round. Its values are valid by construction: a PageURL
// or a VisitorID can only be made by the parsers here, so code holding one
// never checks it again.
package domain
