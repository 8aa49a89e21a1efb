"""uws-adapter's WSDL and XSD files, shipped as package data of uws_adapter.wsdl."""
