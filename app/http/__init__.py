"""The HTTP plumbing every domain shares: dependencies, middleware, uploads, paging, the OpenAPI document."""
