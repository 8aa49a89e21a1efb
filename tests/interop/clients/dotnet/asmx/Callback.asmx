<%@ WebService Language="C#" Class="UwsInterop.CallbackService" %>
