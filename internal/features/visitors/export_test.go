package visitors

// AppendResponse is appendResponse, for the external tests.
var AppendResponse = appendResponse
