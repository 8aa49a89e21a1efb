"""The ThingSpace REST API: request bodies as the docs write them, and the client (OAuth2, M2M
session, provisioning, callback listeners). Never imports the SOAP side."""

from uws_adapter.rest.body import RestRequest, profile_resume_body, rest_body
from uws_adapter.rest.client import CallbackListener, RestClient

__all__ = ["CallbackListener", "RestClient", "RestRequest", "profile_resume_body", "rest_body"]
