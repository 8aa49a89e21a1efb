<?php
// PHP's own SoapClient in WSDL mode, one client per service from its served ?wsdl, runs the interop
// scenario and prints one JSON object (see tests/interop/interop_harness.py).
// Usage: php uws_client.php SESSION_WSDL CARRIER_WSDL USER PASSWORD ACCOUNT GROUP FIELD VALUE DEVICE...
// A DEVICE is KIND:ID[+KIND:ID...]: one device named by each of its identifiers.
[, $sessionWsdl, $carrierWsdl, $user, $password, $account, $group, $field, $value] = $argv;
$devices = array_slice($argv, 9);
const NS_V2 = 'http://nphase.com/unifiedwebservice/v2';
$steps = [];

function run_step(array &$steps, string $name, callable $body): void {
    try {
        $requestId = $body();
        $steps[] = ['step' => $name, 'ok' => true] + ($requestId === null ? [] : ['request_id' => $requestId]);
    } catch (Throwable $e) {
        $steps[] = ['step' => $name, 'ok' => false, 'error' => describe($e)];
    }
}

// A step that must end in PHP's own SoapFault; its faultcode is what the test checks.
function expect_fault(array &$steps, string $name, callable $body): void {
    try {
        $body();
        $steps[] = ['step' => $name, 'ok' => false, 'error' => 'no fault'];
    } catch (SoapFault $fault) {
        $steps[] = ['step' => $name, 'ok' => true, 'fault_type' => get_class($fault),
                    'fault_code' => $fault->faultcode, 'fault_string' => $fault->faultstring];
    } catch (Throwable $e) {
        $steps[] = ['step' => $name, 'ok' => false, 'error' => describe($e)];
    }
}

function describe(Throwable $e): string {
    $text = get_class($e) . ': ' . $e->getMessage();
    return $e instanceof SoapFault ? "$text [faultcode {$e->faultcode}]" : $text;
}

function device_list(array $devices): array {
    $collections = [];
    foreach ($devices as $device) {
        $ids = [];
        foreach (explode('+', $device) as $pair) {
            [$kind, $id] = explode(':', $pair, 2);
            $ids[] = ['Kind' => $kind, 'Identifier' => $id];
        }
        $collections[] = ['DeviceIdentifiers' => ['DeviceIdentifier' => $ids]];
    }
    return ['DeviceIdentifierCollection' => $collections];
}

function change(SoapClient $carrier, string $token, array $input): string {
    $carrier->__setSoapHeaders([new SoapHeader(NS_V2, 'token', $token)]);
    return $carrier->ChangeDeviceState(['Input' => $input])->Output->RequestId;
}

$options = ['cache_wsdl' => WSDL_CACHE_NONE, 'exceptions' => true, 'trace' => true,
            'soap_version' => SOAP_1_1, 'connection_timeout' => 10];
$session = $carrier = null;
$token = '';
run_step($steps, 'wsdl', function () use (&$session, &$carrier, $sessionWsdl, $carrierWsdl, $options) {
    $session = new SoapClient($sessionWsdl, $options);
    $carrier = new SoapClient($carrierWsdl, $options);
    return null;
});
if ($session !== null) {
    run_step($steps, 'login', function () use ($session, $user, $password, &$token) {
        $token = $session->LogIn(['Input' => ['Username' => $user, 'Password' => $password]])->Output->SessionToken;
        return null;
    });
    foreach (['Suspend', 'Restore'] as $action) {
        run_step($steps, strtolower($action) . '-device-list', fn () =>
            change($carrier, $token, ['DeviceList' => device_list($devices), $action => new stdClass()]));
    }
    foreach (['Suspend', 'Restore'] as $action) {
        run_step($steps, strtolower($action) . '-account-group-field', fn () => change($carrier, $token, [
            'DeviceGroupName' => $group, 'AccountName' => $account,
            'DeviceCustomFieldFilter' => ['Name' => $field, 'Value' => $value], $action => new stdClass()]));
    }
    expect_fault($steps, 'fault-bad-token', fn () =>
        change($carrier, 'not-a-session-token', ['DeviceList' => device_list($devices), 'Suspend' => new stdClass()]));
    expect_fault($steps, 'fault-unknown-kind', fn () =>
        change($carrier, $token, ['DeviceList' => device_list(['FOO:123']), 'Suspend' => new stdClass()]));
    run_step($steps, 'logout', function () use ($session, $token) {
        $session->__setSoapHeaders([new SoapHeader(NS_V2, 'token', $token)]);
        $session->LogOut(['Input' => ['SessionToken' => $token]]);
        return null;
    });
    expect_fault($steps, 'fault-after-logout', fn () =>
        change($carrier, $token, ['DeviceList' => device_list($devices), 'Restore' => new stdClass()]));
}
echo json_encode(['client' => 'PHP SoapClient ' . PHP_VERSION, 'steps' => $steps], JSON_UNESCAPED_SLASHES), "\n";
